// Stalk — Celery monitoring server.
#include "metrics/exposition_writer.h"

#include <sys/mman.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "metrics/histogram.h"
#include "metrics/label_space.h"

namespace stalk {
namespace {

// Copies n bytes with a few fixed-size moves for the short pieces a sample line is made of (names,
// label values, numbers): GCC inlines fixed-size memcpy, while a variable-size one is a libc call
// that cost more than the copy itself (measured: 35% of render time).
inline void CopyShort(char* dst, const char* src, size_t n) {
  if (n > 256) {
    std::memcpy(dst, src, n);
  } else if (n > 16) {
    for (size_t i = 0; i + 16 < n; i += 16) {
      std::memcpy(dst + i, src + i, 16);
    }
    std::memcpy(dst + n - 16, src + n - 16, 16);  // the tail, overlapping what is already copied
  } else if (n >= 8) {
    std::memcpy(dst, src, 8);
    std::memcpy(dst + n - 8, src + n - 8, 8);
  } else if (n >= 4) {
    std::memcpy(dst, src, 4);
    std::memcpy(dst + n - 4, src + n - 4, 4);
  } else if (n > 0) {
    dst[0] = src[0];
    dst[n / 2] = src[n / 2];
    dst[n - 1] = src[n - 1];
  }
}

std::string_view TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kInfo:
      return "info";
  }
  return "untyped";
}

// Buffers from this size up are asked to use transparent huge pages. An exposition of a large
// cluster is tens to hundreds of MB written once into fresh memory; with 4 KiB pages the page faults
// cost more than the formatting (measured: ~90% of render time on a VM, 96 MB in ~24,000 faults).
constexpr size_t kHugePageMin = size_t{8} << 20;
constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

// Sizes `buf` to n bytes, advising huge pages for its memory before it is first touched.
void SizeBuffer(std::string& buf, size_t n) {
  if (n >= kHugePageMin) {
    buf.reserve(n);  // allocated, not yet touched (malloc maps big blocks fresh)
    const auto begin = reinterpret_cast<uintptr_t>(buf.data());
    const uintptr_t first = (begin + kHugePage - 1) & ~(kHugePage - 1);
    const uintptr_t last = (begin + buf.capacity()) & ~(kHugePage - 1);
    if (last > first) {
      // Advisory only: where THP is off or the range is not ours to advise, nothing changes.
      ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
    }
  }
  buf.resize(n);
}

// Longest text of one number: to_chars of a double needs at most 24 chars, a uint64 20.
constexpr size_t kMaxNumber = 32;

}  // namespace

ExpositionWriter::ExpositionWriter(bool openmetrics, size_t reserve_bytes) : openmetrics_(openmetrics) {
  SizeBuffer(buf_, std::max<size_t>(reserve_bytes, 4096));
}

void ExpositionWriter::Grow(size_t n) { SizeBuffer(buf_, std::max(buf_.size() * 2, len_ + n)); }

void ExpositionWriter::Put(std::string_view s) {
  CopyShort(Room(s.size()), s.data(), s.size());
  len_ += s.size();
}

void ExpositionWriter::PutUint(uint64_t v) {
  char* p = Room(kMaxNumber);
  if (v < 10) {
    *p = static_cast<char>('0' + v);
    ++len_;
    return;
  }
  len_ = static_cast<size_t>(std::to_chars(p, p + kMaxNumber, v).ptr - buf_.data());
}

void ExpositionWriter::PutDouble(double v) {
  if (std::isnan(v)) {
    Put("NaN");
  } else if (std::isinf(v)) {
    Put(v > 0 ? "+Inf" : "-Inf");
  } else {
    char* p = Room(kMaxNumber);
    len_ = static_cast<size_t>(std::to_chars(p, p + kMaxNumber, v).ptr - buf_.data());
  }
}

void ExpositionWriter::PutHelp(std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      Put("\\\\");
    } else if (c == '\n') {
      Put("\\n");
    } else if (c == '"' && openmetrics_) {
      Put("\\\"");  // OpenMetrics escapes quotes in HELP too; 0.0.4 does not
    } else {
      Put(c);
    }
  }
}

void ExpositionWriter::Family(std::string_view name, MetricType type, std::string_view help) {
  family_.assign(name);
  sample_suffix_ = type == MetricType::kCounter ? "_total" : type == MetricType::kInfo ? "_info" : "";
  sample_prefix_.assign(name);
  sample_prefix_ += sample_suffix_;
  sample_prefix_ += '{';
  if (type == MetricType::kHistogram) {
    bucket_prefix_ = family_ + "_bucket{";
    count_prefix_ = family_ + "_count{";
    sum_prefix_ = family_ + "_sum{";
  }
  // 0.0.4 has no info type and names counters by their sample name, as prometheus_client does.
  const bool full_name = !openmetrics_ && !sample_suffix_.empty();
  const std::string_view type_name =
      !openmetrics_ && type == MetricType::kInfo ? std::string_view("gauge") : TypeName(type);
  for (std::string_view line : {std::string_view("# HELP "), std::string_view("# TYPE ")}) {
    Put(line);
    Put(name);
    if (full_name) {
      Put(sample_suffix_);
    }
    Put(' ');
    if (line == "# HELP ") {
      PutHelp(help);
    } else {
      Put(type_name);
    }
    Put('\n');
  }
}

void ExpositionWriter::OpenWith(const std::string& prefix) {
  Put(prefix);
  labels_start_ = len_;
}

void ExpositionWriter::Open(std::string_view suffix) {
  if (suffix.empty()) {
    Put(sample_prefix_);
  } else {
    Put(family_);
    Put(suffix);
    Put('{');
  }
  labels_start_ = len_;
}

void ExpositionWriter::Labels(std::string_view prebuilt) {
  if (prebuilt.empty()) {
    return;
  }
  char* p = Room(prebuilt.size() + 1);
  if (len_ != labels_start_) {
    *p++ = ',', ++len_;
  }
  CopyShort(p, prebuilt.data(), prebuilt.size());
  len_ += prebuilt.size();
}

void ExpositionWriter::Label(std::string_view key, std::string_view escaped_value) {
  char* p = Room(key.size() + escaped_value.size() + 4);
  char* const start = p;
  if (len_ != labels_start_) {
    *p++ = ',';
  }
  CopyShort(p, key.data(), key.size());
  p += key.size();
  *p++ = '=';
  *p++ = '"';
  CopyShort(p, escaped_value.data(), escaped_value.size());
  p += escaped_value.size();
  *p++ = '"';
  len_ += static_cast<size_t>(p - start);
}

void ExpositionWriter::LabelRaw(std::string_view key, std::string_view raw_value) {
  std::string escaped;
  AppendEscapedLabelValue(escaped, raw_value);
  Label(key, escaped);
}

void ExpositionWriter::EndLabels() {
  if (len_ == labels_start_) {
    buf_[len_ - 1] = ' ';  // no labels: the '{' becomes the separator
  } else {
    char* p = Room(2);
    p[0] = '}', p[1] = ' ';
    len_ += 2;
  }
}

void ExpositionWriter::Close(uint64_t value) {
  EndLabels();
  PutUint(value);
  Put('\n');
}

void ExpositionWriter::Close(double value) {
  EndLabels();
  PutDouble(value);
  Put('\n');
}

void ExpositionWriter::HistogramSeries(std::string_view prebuilt_labels, const Histogram& h,
                                       const std::vector<std::string>& le_values) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < le_values.size(); ++i) {
    if (i < h.counts.size()) {
      cumulative += h.counts[i];
    }
    OpenWith(bucket_prefix_);
    Labels(prebuilt_labels);
    Label("le", le_values[i]);
    Close(cumulative);
  }
  OpenWith(count_prefix_);
  Labels(prebuilt_labels);
  Close(h.count);
  OpenWith(sum_prefix_);
  Labels(prebuilt_labels);
  Close(h.sum);
}

std::string ExpositionWriter::Finish() {
  if (openmetrics_) {
    Put("# EOF\n");
  }
  buf_.resize(len_);
  return std::move(buf_);
}

void ExpositionWriter::AppendTo(std::string& exposition) {
  std::string text = Finish();
  constexpr std::string_view kEof = "# EOF\n";
  if (openmetrics_ && text.ends_with(kEof)) {
    text.resize(text.size() - kEof.size());
  }
  if (openmetrics_ && exposition.ends_with(kEof)) {
    exposition.insert(exposition.size() - kEof.size(), text);
  } else {
    exposition += text;
  }
}

}  // namespace stalk
