// Stalk — Celery monitoring server.
#include "metrics/label_space.h"

namespace stalk {
namespace {

// Debian's abseil is built with its own absl::string_view (not an alias of std::string_view), which
// is what the transparent string hash accepts.
absl::string_view Key(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t min;
  if (c < 0x80) {
    return 1;
  } else if ((c & 0xE0) == 0xC0) {
    n = 2, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) {
    return 0;
  }
  uint32_t cp = c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xC0) != 0x80) {
      return 0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return 0;  // overlong, out of range, or a surrogate
  }
  return n;
}

}  // namespace

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (size_t i = 0; i < value.size();) {
    const char c = value[i];
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x80) {
      out += c;
    } else {
      const size_t n = Utf8SequenceLength(value, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD: the text formats require UTF-8
        ++i;
        continue;
      }
      out.append(value.data() + i, n);
      i += n;
      continue;
    }
    ++i;
  }
}

uint32_t LabelSpace::Add(std::string_view value) {
  const auto slot = static_cast<uint32_t>(entries_.size());
  Entry& e = entries_.emplace_back();
  AppendEscapedLabelValue(e.escaped, value);
  by_text_.emplace(std::string(value), slot);
  return slot;
}

uint32_t LabelSpace::Overflow(Pool pool) {
  ++overflows_[static_cast<size_t>(pool)];
  if (other_ == kNone) {
    // A real value "other" already holding a slot becomes the overflow slot too: two series with
    // the same labels would be invalid exposition.
    auto it = by_text_.find(Key(kOther));
    other_ = it != by_text_.end() ? it->second : Add(kOther);
  }
  return other_;
}

uint32_t LabelSpace::SlotFor(uint32_t id, std::string_view value, Pool pool) {
  if (auto it = by_id_.find(id); it != by_id_.end()) {
    return it->second;
  }
  const auto p = static_cast<size_t>(pool);
  uint32_t slot;
  if (auto it = by_text_.find(Key(value)); it != by_text_.end()) {
    slot = it->second;  // first seen by text, or the overflow slot's own "other"
  } else if (used_[p] >= caps_[p]) {
    return Overflow(pool);  // not remembered by id: folded values must not grow the maps
  } else {
    slot = Add(value);
    ++used_[p];
  }
  by_id_.emplace(id, slot);
  return slot;
}

uint32_t LabelSpace::SlotFor(std::string_view value, Pool pool) {
  if (auto it = by_text_.find(Key(value)); it != by_text_.end()) {
    return it->second;
  }
  const auto p = static_cast<size_t>(pool);
  if (used_[p] >= caps_[p]) {
    return Overflow(pool);
  }
  ++used_[p];
  return Add(value);
}

uint32_t LabelSpace::FindById(uint32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? kNone : it->second;
}

uint32_t LabelSpace::FindByText(std::string_view value) const {
  auto it = by_text_.find(Key(value));
  return it == by_text_.end() ? kNone : it->second;
}

uint32_t LabelSpace::Resolve(uint32_t id, std::string_view value) const {
  if (uint32_t slot = FindById(id); slot != kNone) {
    return slot;
  }
  if (uint32_t slot = FindByText(value); slot != kNone) {
    return slot;
  }
  return other_;
}

}  // namespace stalk
