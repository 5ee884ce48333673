// Stalk — Celery monitoring server.
#include "common/task_id.h"

namespace stalk {
namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;  // upper case deliberately rejected: it would not round-trip
}
constexpr int kDashAt[] = {8, 13, 18, 23};
}  // namespace

bool ParseUuid(std::string_view text, Uuid& out) {
  if (text.size() != 36) {
    return false;
  }
  for (int d : kDashAt) {
    if (text[static_cast<size_t>(d)] != '-') {
      return false;
    }
  }
  size_t byte = 0;
  for (size_t i = 0; i < 36;) {
    if (text[i] == '-') {
      ++i;
      continue;
    }
    const int hi = HexValue(text[i]);
    const int lo = HexValue(text[i + 1]);
    if (hi < 0 || lo < 0) {
      return false;
    }
    out[byte++] = static_cast<uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return byte == 16;
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
