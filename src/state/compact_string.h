// Stalk — Celery monitoring server.
// CompactString: an owned, immutable string in one pointer (8 bytes; std::string is 32). Null and empty
// are distinct, as Flower distinguishes a missing field (null) from "". Used for the per-task text fields,
// of which a million tasks keep several each.
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
  CompactString(CompactString&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  CompactString& operator=(CompactString&& o) noexcept;
  ~CompactString() { Reset(); }

  bool is_null() const { return p_ == nullptr; }
  std::string_view view() const;
  size_t size() const;
  // Copies `s`; when `max_bytes` > 0 and `s` is longer, keeps a prefix and appends a marker that says
  // how many bytes were cut. Returns true when it truncated.
  bool Assign(std::string_view s, size_t max_bytes = 0);
  void Reset();

 private:
  char* p_ = nullptr;  // [uint32 size][bytes]
};

}  // namespace stalk
