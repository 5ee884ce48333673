// Stalk — Celery monitoring server.
#include "state/compact_string.h"

#include <cstdlib>
#include <cstring>
#include <string>

namespace stalk {

static_assert(sizeof(uintptr_t) == 8, "inline storage assumes 64-bit words");

CompactString& CompactString::operator=(CompactString&& o) noexcept {
  if (this != &o) {
    Reset();
    word_ = o.word_;
    o.word_ = 0;
  }
  return *this;
}

std::string_view CompactString::view() const {
  if (word_ == 0) {
    return {};
  }
  if (is_inline()) {
    const char* bytes = reinterpret_cast<const char*>(&word_);
    return {bytes + 1, static_cast<size_t>(static_cast<unsigned char>(bytes[0]) >> 1)};
  }
  const char* p = reinterpret_cast<const char*>(word_);
  uint32_t n;
  std::memcpy(&n, p, sizeof n);
  return {p + sizeof n, n};
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
  if (word_ != 0 && view() == s) {
    return truncated;
  }
  Reset();
  if (s.size() <= kInlineMax) {
    uintptr_t w = 0;
    char* bytes = reinterpret_cast<char*>(&w);
    bytes[0] = static_cast<char>(s.size() << 1 | 1);
    if (!s.empty()) {
      std::memcpy(bytes + 1, s.data(), s.size());
    }
    word_ = w;
    return truncated;
  }
  const auto n = static_cast<uint32_t>(s.size());
  char* p = static_cast<char*>(std::malloc(sizeof n + n));
  if (!p) {
    return truncated;  // out of memory: the field stays null rather than crashing the ingest thread
  }
  std::memcpy(p, &n, sizeof n);
  std::memcpy(p + sizeof n, s.data(), n);
  word_ = reinterpret_cast<uintptr_t>(p);
  return truncated;
}

void CompactString::Reset() {
  if (word_ != 0 && !is_inline()) {
    std::free(reinterpret_cast<char*>(word_));
  }
  word_ = 0;
}

}  // namespace stalk
