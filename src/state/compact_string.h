// Stalk — Celery monitoring server.
// CompactString: an owned, immutable string in one pointer-sized word (8 bytes; std::string is 32).
// Strings of up to 7 bytes live inline in the word (tagged by its low bit, which a malloc'd pointer
// never has), so typical Celery fields — args "(1, 2)", kwargs "{}", result "3" — cost no allocation.
// Null and empty are distinct, as Flower distinguishes a missing field (null) from "". Used for the
// per-task text fields, of which a million tasks keep several each.
#pragma once

#include <cstdint>
#include <string_view>

namespace stalk {

class CompactString {
 public:
  CompactString() = default;
  explicit CompactString(std::string_view s) { Assign(s); }
  CompactString(const CompactString&) = delete;
  CompactString& operator=(const CompactString&) = delete;
  CompactString(CompactString&& o) noexcept : word_(o.word_) { o.word_ = 0; }
  CompactString& operator=(CompactString&& o) noexcept;
  ~CompactString() { Reset(); }

  bool is_null() const { return word_ == 0; }
  // Asks the CPU to start loading the heap block (no-op for null and inline strings): a scan over
  // many tasks' strings is bound by memory latency, and loads issued ahead overlap.
  void Prefetch() const {
    if (word_ != 0 && !is_inline()) {
      __builtin_prefetch(reinterpret_cast<const void*>(word_));
    }
  }
  std::string_view view() const;
  size_t size() const;
  // Copies `s`; when `max_bytes` > 0 and `s` is longer, keeps a prefix and appends a marker that says
  // how many bytes were cut. Returns true when it truncated.
  bool Assign(std::string_view s, size_t max_bytes = 0);
  void Reset();

 private:
  static constexpr size_t kInlineMax = 7;
  bool is_inline() const { return (word_ & 1u) != 0; }
  // 0: null. Low bit 1: inline, byte 0 = size << 1 | 1, bytes 1..7 = data (little-endian layout).
  // Otherwise a malloc'd block [uint32 size][bytes].
  uintptr_t word_ = 0;
};

}  // namespace stalk
