// Stalk — Celery monitoring server.
#include "common/base64.h"

#include <array>
#include <cstdint>

namespace stalk {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<uint8_t, 256> MakeDecodeTable() {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) {
    v = 0xFF;
  }
  for (int i = 0; i < 64; ++i) {
    t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<uint8_t>(i);
  }
  return t;
}
constexpr auto kDecode = MakeDecodeTable();

}  // namespace

bool Base64Decode(std::string_view in, std::string& out) {
  out.clear();
  while (!in.empty() && in.back() == '=') {
    in.remove_suffix(1);
  }
  if (in.size() % 4 == 1) {
    return false;
  }
  out.resize(in.size() / 4 * 3 + (in.size() % 4 ? in.size() % 4 - 1 : 0));
  const auto* src = reinterpret_cast<const uint8_t*>(in.data());
  char* dst = out.data();
  size_t i = 0;
  const size_t full = in.size() / 4 * 4;
  for (; i < full; i += 4) {
    uint32_t a = kDecode[src[i]], b = kDecode[src[i + 1]], c = kDecode[src[i + 2]], d = kDecode[src[i + 3]];
    if ((a | b | c | d) & 0x80) {
      return false;
    }
    uint32_t n = (a << 18) | (b << 12) | (c << 6) | d;
    *dst++ = static_cast<char>(n >> 16);
    *dst++ = static_cast<char>(n >> 8);
    *dst++ = static_cast<char>(n);
  }
  const size_t rest = in.size() - full;
  if (rest >= 2) {
    uint32_t a = kDecode[src[i]], b = kDecode[src[i + 1]];
    uint32_t c = rest == 3 ? kDecode[src[i + 2]] : 0;
    if ((a | b | c) & 0x80) {
      return false;
    }
    uint32_t n = (a << 18) | (b << 12) | (c << 6);
    *dst++ = static_cast<char>(n >> 16);
    if (rest == 3) {
      *dst++ = static_cast<char>(n >> 8);
    }
  }
  return true;
}

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  const auto* s = reinterpret_cast<const uint8_t*>(in.data());
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (s[i] << 16) | (s[i + 1] << 8) | s[i + 2];
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += kAlphabet[(n >> 6) & 63];
    out += kAlphabet[n & 63];
  }
  if (i < in.size()) {
    uint32_t n = s[i] << 16;
    if (i + 1 < in.size()) {
      n |= s[i + 1] << 8;
    }
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace stalk
