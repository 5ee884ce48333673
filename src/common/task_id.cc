// Stalk — Celery monitoring server.
#include "common/task_id.h"

#include <array>

namespace stalk {
namespace {
// Hex digit values; 0xFF for anything else. Upper case is deliberately rejected: it would not
// round-trip through FormatUuid, so such ids are kept as text.
constexpr std::array<uint8_t, 256> MakeHexTable() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t)
    v = 0xFF;
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<size_t>(c)] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c)
    t[static_cast<size_t>(c)] = static_cast<uint8_t>(c - 'a' + 10);
  return t;
}
constexpr auto kHexValue = MakeHexTable();
// Offsets of the 16 byte pairs in "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
constexpr size_t kPairAt[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
}  // namespace

bool ParseUuid(std::string_view text, Uuid& out) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
    return false;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  uint8_t bad = 0;
  for (size_t i = 0; i < 16; ++i) {
    const uint8_t hi = kHexValue[p[kPairAt[i]]];
    const uint8_t lo = kHexValue[p[kPairAt[i] + 1]];
    bad |= static_cast<uint8_t>(hi | lo);
    out[i] = static_cast<uint8_t>(hi << 4 | (lo & 0x0F));
  }
  return (bad & 0xF0) == 0;
}

void FormatUuid(const Uuid& id, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t pos = 0;
  for (size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out[pos++] = '-';
    }
    out[pos++] = kHex[id[i] >> 4];
    out[pos++] = kHex[id[i] & 15];
  }
}

std::string FormatUuid(const Uuid& id) {
  std::string s(36, '\0');
  FormatUuid(id, s.data());
  return s;
}

}  // namespace stalk
