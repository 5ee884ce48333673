// Stalk — Celery monitoring server.
// ExpositionWriter: appends the Prometheus text format (0.0.4) or OpenMetrics 1.0.0 into one buffer —
// no iostreams, numbers through std::to_chars, short pieces copied inline. It owns the differences
// between the two formats: counter family names (`x_total` in 0.0.4 headers, `x` in OpenMetrics), the
// `info` type, HELP escaping, and the closing `# EOF`. It does not sort or de-duplicate: callers write
// each family once, its samples together, each label set once. Large buffers are advised to use
// transparent huge pages: for a big cluster the exposition is tens of MB of fresh memory per scrape,
// and 4 KiB page faults cost more than the formatting (see exposition_writer.cc).
//
//   ExpositionWriter w(/*openmetrics=*/false);
//   w.Family("flower_events", MetricType::kCounter, "Number of events");
//   w.Open(); w.Labels(R"(worker="w1",task="t")"); w.Label("type", "task-received"); w.Close(uint64_t{3});
//   // -> flower_events_total{worker="w1",task="t",type="task-received"} 3
//   std::string body = w.Finish();
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

struct Histogram;

enum class MetricType : uint8_t { kCounter, kGauge, kHistogram, kInfo };

class ExpositionWriter {
 public:
  explicit ExpositionWriter(bool openmetrics, size_t reserve_bytes = 0);

  // Starts a family with its HELP and TYPE lines. `name` is the family name without the suffix its
  // samples carry: "flower_events" for the counter whose samples are flower_events_total,
  // "stalk_build" for the info metric stalk_build_info. In the 0.0.4 format counters are declared
  // with "_total" (as prometheus_client does) and info metrics as gauges named "<name>_info".
  void Family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the current family, built in three steps: Open, any labels, Close with the value.
  // `suffix` is appended to the sample name ("_bucket"...); empty = the family's own sample name.
  void Open(std::string_view suffix = {});
  // Appends pre-escaped `k="v",...` text (may be empty).
  void Labels(std::string_view prebuilt);
  // Appends one label; `escaped_value` must already be escaped (see AppendEscapedLabelValue).
  void Label(std::string_view key, std::string_view escaped_value);
  // Appends one label, escaping `raw_value`.
  void LabelRaw(std::string_view key, std::string_view raw_value);
  // Ends the sample with its value: integers exactly, doubles shortest round-trip, NaN and ±Inf as
  // "NaN", "+Inf", "-Inf".
  void Close(uint64_t value);
  void Close(double value);

  // A whole histogram series: cumulative _bucket lines (one per `le_values`, the last "+Inf"), then
  // _count and _sum. `h.counts` must be empty or have le_values.size() slots. The current family
  // must be a histogram.
  void HistogramSeries(std::string_view prebuilt_labels, const Histogram& h, const std::vector<std::string>& le_values);

  // Makes room for at least `n` more bytes now, so the appends that follow do not grow the buffer
  // (Render grows it between read-lock slices, where a copy of tens of MB delays no one).
  void ReserveSpare(size_t n) {
    if (buf_.size() - len_ < n) {
      Grow(n);
    }
  }

  // Ends the exposition ("# EOF" for OpenMetrics) and hands the text over.
  std::string Finish();
  // Ends this writer's families and adds them to an exposition already rendered (layers that export
  // their own families: store, auth, custom...), keeping OpenMetrics' single "# EOF" last.
  void AppendTo(std::string& exposition);

  bool openmetrics() const { return openmetrics_; }
  size_t size() const { return len_; }

 private:
  // Room for `n` more bytes; returns where they go. The buffer is a std::string sized ahead of the
  // text (len_ marks the end), so appends are a bounds check and an inlined copy, not a libc call.
  char* Room(size_t n) {
    if (len_ + n > buf_.size()) {
      Grow(n);
    }
    return buf_.data() + len_;
  }
  void Grow(size_t n);
  void Put(std::string_view s);
  void Put(char c) { *Room(1) = c, ++len_; }
  void PutUint(uint64_t v);
  void PutDouble(double v);
  void PutHelp(std::string_view help);
  void EndLabels();
  void OpenWith(const std::string& prefix);

  std::string buf_;
  size_t len_ = 0;
  bool openmetrics_;
  std::string family_;
  std::string sample_prefix_;                              // "<family><suffix>{" of the family's own samples
  std::string bucket_prefix_, count_prefix_, sum_prefix_;  // histograms: "<family>_bucket{"...
  std::string_view sample_suffix_;                         // "_total" for counters, "_info" for info, "" otherwise
  size_t labels_start_ = 0;                                // len_ just after the '{' of the open sample
};

}  // namespace stalk
