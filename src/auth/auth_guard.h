// Stalk — Celery monitoring server.
// AuthGuard: the Router's guard (Router::SetGuard). For each request it decides, before the handler
// runs: public route, 401 (no or wrong credentials; WWW-Authenticate when Basic auth is configured),
// 429 (locked out after repeated failures, per client IP and per user), 403 (role too low, or a
// cross-site state-changing request), or pass. Operator/admin actions that pass are written to the
// "audit" logger (user, method, path, remote address). With no credentials configured Stalk stays
// open, as Flower does, but still refuses cross-site POSTs.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/credential_store.h"
#include "auth/login_limiter.h"
#include "auth/oidc.h"
#include "http/http_request.h"

namespace stalk {

struct AuthOptions {
  bool metrics_public = false;  // /metrics without credentials
  bool xheaders = false;        // trust X-Real-Ip / X-Forwarded-For / X-Forwarded-Host (behind a proxy)
  LoginLimiter::Options limiter;
};

enum class OriginCheck { kSameOrigin, kCrossOrigin, kAbsent };

// Compares the Origin (else Referer) header's host:port with the Host header (X-Forwarded-Host
// with xheaders).
OriginCheck CheckOrigin(const HttpRequest& req, bool xheaders);
// The client's address: the connection's peer; with xheaders X-Real-Ip, else the last
// X-Forwarded-For entry (the one the proxy appended).
std::string ClientAddress(const HttpRequest& req, bool xheaders);
// Methods that change state (everything but GET, HEAD, OPTIONS).
bool IsStateChanging(std::string_view method);

// Refused requests by reason, for /metrics (stalk_auth_denied_total{reason}).
struct AuthCounters {
  std::atomic<uint64_t> unauthenticated{0};      // 401: no credentials
  std::atomic<uint64_t> invalid_credentials{0};  // 401: wrong password, unknown token, malformed header
  std::atomic<uint64_t> locked_out{0};           // 429: too many failed logins
  std::atomic<uint64_t> forbidden{0};            // 403: the role may not do this
  std::atomic<uint64_t> cross_site{0};           // 403: state change from another origin (CSRF)
};

class AuthGuard {
 public:
  AuthGuard(CredentialStore store, AuthOptions options, LoginLimiter::Clock clock = LoginLimiter::SteadySeconds);

  // nullopt: let the request through. Otherwise the response to send instead of the handler's.
  std::optional<HttpResponse> Check(const HttpRequest& req, std::string_view required_role);

  bool Enabled() const { return !store_.Empty() || oidc_ != nullptr; }
  // OIDC login: session cookies count as credentials; browsers without one are sent to /login.
  void SetOidc(std::shared_ptr<OidcLogin> oidc) { oidc_ = std::move(oidc); }
  const std::shared_ptr<OidcLogin>& oidc() const { return oidc_; }
  const LoginLimiter& limiter() const { return limiter_; }
  const AuthCounters& counters() const { return counters_; }

 private:
  HttpResponse Unauthorized(std::string_view message) const;
  std::optional<HttpResponse> LockedOut(const std::string& key);
  void Audit(const HttpRequest& req, std::string_view who, std::string_view role) const;
  // The checks once the principal is known: role, cross-site, audit.
  std::optional<HttpResponse> Admit(const HttpRequest& req, const Principal& who, Role need, bool changes_state,
                                    bool bearer, OriginCheck origin);

  CredentialStore store_;
  AuthOptions opt_;
  LoginLimiter limiter_;
  AuthCounters counters_;
  std::shared_ptr<OidcLogin> oidc_;
};

}  // namespace stalk
