// Stalk — Celery monitoring server.
#include "transport/resp_pmessage.h"

#include <cstring>

namespace stalk {

PMessageParse ParsePMessage(const char* p, size_t n, PMessageView& out) {
  static constexpr std::string_view kHead = "*4\r\n$8\r\npmessage\r\n";
  if (n < kHead.size()) {
    return std::memcmp(p, kHead.data(), n) == 0 ? PMessageParse::kIncomplete : PMessageParse::kOther;
  }
  if (std::memcmp(p, kHead.data(), kHead.size()) != 0) {
    return PMessageParse::kOther;
  }
  size_t at = kHead.size();
  std::string_view parts[3];
  for (auto& part : parts) {
    if (at >= n) {
      return PMessageParse::kIncomplete;
    }
    if (p[at] != '$') {
      return PMessageParse::kOther;
    }
    // Plain decimal lengths only, as Redis writes them: no sign, no leading zero, at most 10 digits
    // (Redis caps bulk strings at 512 MB). hiredis rejects a leading zero; so must we.
    size_t q = at + 1, len = 0, digits = 0;
    for (; q < n && p[q] >= '0' && p[q] <= '9'; ++q) {
      if (++digits > 10) {
        return PMessageParse::kOther;
      }
      len = len * 10 + static_cast<size_t>(p[q] - '0');
    }
    if (digits > 1 && p[at + 1] == '0') {
      return PMessageParse::kOther;
    }
    if (q + 1 >= n) {
      return q < n && p[q] != '\r' ? PMessageParse::kOther : PMessageParse::kIncomplete;
    }
    if (digits == 0 || p[q] != '\r' || p[q + 1] != '\n') {
      return PMessageParse::kOther;
    }
    const size_t data = q + 2;
    if (n - data < len + 2) {
      return PMessageParse::kIncomplete;
    }
    if (p[data + len] != '\r' || p[data + len + 1] != '\n') {
      return PMessageParse::kOther;
    }
    part = std::string_view(p + data, len);
    at = data + len + 2;
  }
  out.pattern = parts[0];
  out.channel = parts[1];
  out.payload = parts[2];
  out.size = at;
  return PMessageParse::kComplete;
}

}  // namespace stalk
