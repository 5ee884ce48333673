// Stalk — Celery monitoring server.
// SignedCookie: tamper-proof, expiring cookie values (HMAC-SHA256 over payload and expiry, compared in
// constant time). Used for the login session and for the short-lived OIDC state/nonce cookie. The key
// comes from the environment (--cookie_secret: STALK_COOKIE_SECRET / FLOWER_COOKIE_SECRET); without
// one a random key is made at start-up and sessions end when Stalk restarts.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace stalk {

class SignedCookie {
 public:
  explicit SignedCookie(std::string key) : key_(std::move(key)) {}

  // "<base64url payload>.<expiry seconds>.<base64url mac>"
  std::string Sign(std::string_view payload, double expires_at) const;
  // The payload when the value is intact and not expired at `now`.
  std::optional<std::string> Verify(std::string_view value, double now) const;

 private:
  std::string Mac(std::string_view data) const;
  std::string key_;
};

// The value of cookie `name` in a Cookie request header ("" when absent).
std::string CookieValue(std::string_view cookie_header, std::string_view name);

}  // namespace stalk
