// Stalk — Celery monitoring server.
#include "auth/signed_cookie.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <cmath>

#include "auth/jwt.h"
#include "auth/secrets.h"

namespace stalk {

std::string SignedCookie::Mac(std::string_view data) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

std::string SignedCookie::Sign(std::string_view payload, double expires_at) const {
  std::string text = Base64UrlEncode(payload) + "." + std::to_string(static_cast<long long>(std::floor(expires_at)));
  return text + "." + Mac(text);
}

std::optional<std::string> SignedCookie::Verify(std::string_view value, double now) const {
  const size_t mac_dot = value.rfind('.');
  if (mac_dot == std::string_view::npos) {
    return std::nullopt;
  }
  const std::string_view signed_part = value.substr(0, mac_dot);
  if (!ConstantTimeEquals(Mac(signed_part), value.substr(mac_dot + 1))) {
    return std::nullopt;
  }
  const size_t exp_dot = signed_part.rfind('.');
  if (exp_dot == std::string_view::npos) {
    return std::nullopt;
  }
  long long expires = 0;
  const std::string_view exp_text = signed_part.substr(exp_dot + 1);
  auto [end, ec] = std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), expires);
  if (ec != std::errc() || end != exp_text.data() + exp_text.size() || static_cast<double>(expires) <= now) {
    return std::nullopt;
  }
  std::string payload;
  if (!Base64UrlDecode(signed_part.substr(0, exp_dot), payload)) {
    return std::nullopt;
  }
  return payload;
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && pair.front() == ' ') {
      pair.remove_prefix(1);
    }
    const size_t eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) {
      std::string_view v = pair.substr(eq + 1);
      while (!v.empty() && v.back() == ' ') {
        v.remove_suffix(1);
      }
      return std::string(v);
    }
  }
  return {};
}

}  // namespace stalk
