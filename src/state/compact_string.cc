// Stalk — Celery monitoring server.
#include "state/compact_string.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace stalk {

CompactString& CompactString::operator=(CompactString&& o) noexcept {
  if (this != &o) {
    Reset();
    p_ = o.p_;
    o.p_ = nullptr;
  }
  return *this;
}

std::string_view CompactString::view() const {
  if (!p_) {
    return {};
  }
  uint32_t n;
  std::memcpy(&n, p_, sizeof n);
  return {p_ + sizeof n, n};
}

size_t CompactString::size() const { return view().size(); }

bool CompactString::Assign(std::string_view s, size_t max_bytes) {
  std::string marked;
  bool truncated = false;
  if (max_bytes > 0 && s.size() > max_bytes) {
    size_t keep = max_bytes;
    // Do not cut a UTF-8 sequence in half.
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0) == 0x80) {
      --keep;
    }
    marked.assign(s.substr(0, keep));
    marked += "... [truncated by stalk: ";
    marked += std::to_string(s.size());
    marked += " bytes]";
    s = marked;
    truncated = true;
  }
  if (p_ && view() == s) {
    return truncated;
  }
  Reset();
  const auto n = static_cast<uint32_t>(s.size());
  p_ = static_cast<char*>(std::malloc(sizeof n + n));
  if (!p_) {
    return truncated;  // out of memory: the field stays null rather than crashing the ingest thread
  }
  std::memcpy(p_, &n, sizeof n);
  if (n) {
    std::memcpy(p_ + sizeof n, s.data(), n);
  }
  return truncated;
}

void CompactString::Reset() {
  std::free(p_);
  p_ = nullptr;
}

}  // namespace stalk
