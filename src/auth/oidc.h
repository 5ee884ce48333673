// Stalk — Celery monitoring server.
// OpenID Connect login (authorization-code flow) for the dashboard and API: provider discovery
// (/.well-known/openid-configuration), the authorization redirect with `state` and `nonce` (kept in a
// short-lived signed cookie, so nothing is stored server side), the code exchange at the token
// endpoint, and checks of the id_token: RS256 signature against the provider's JWKS (re-fetched once
// for an unknown key id), issuer, audience, expiry, nonce, and the e-mail address against Flower's
// `--auth` regular expression. A successful login becomes a signed session cookie (HttpOnly,
// SameSite=Lax, Secure over HTTPS) that AuthGuard accepts like a credential.
//
// Flower's presets map to OIDC issuers: google (accounts.google.com), gitlab (gitlab.com or
// --oidc_issuer), okta (--oidc_issuer, e.g. https://example.okta.com). GitHub has no OpenID Connect: its
// preset runs GitHub's OAuth2 flow instead (github.com, or GitHub Enterprise at --oidc_issuer) and
// takes the primary verified address from the API's /user/emails; `state` is checked the same way.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "auth/http_client.h"
#include "auth/jwt.h"
#include "auth/roles.h"
#include "auth/signed_cookie.h"
#include "common/result.h"
#include "http/http_request.h"
#include "http/router.h"

namespace stalk {

struct OidcSettings {
  std::string provider;       // --auth_provider: google, gitlab, okta, oidc (or Flower's handler class names)
  std::string issuer;         // --oidc_issuer
  std::string client_id;      // --oauth2_key
  std::string client_secret;  // --oauth2_secret (secret: from the environment)
  std::string redirect_uri;   // --oauth2_redirect_uri: https://stalk.example.com/login
  std::string email_regex;    // --auth (Flower): who may log in
  Role role = Role::kViewer;  // --oidc_role: the role an OIDC user gets
  std::string ca_file;        // --oidc_ca_file: trust for a private provider
  double session_seconds = 12 * 3600;
  std::string url_prefix;  // --url_prefix: where redirects back into Stalk go
  bool tls = false;        // cookies are Secure when Stalk serves HTTPS...
  bool xheaders = false;   // ...or a trusted proxy says X-Forwarded-Proto: https
};

// Normalizes Flower's provider names; errors for unknown or unsupported ones, and fills the issuer.
Result<OidcSettings> ResolveOidcSettings(OidcSettings settings);

struct OidcSession {
  std::string email;
  Role role = Role::kViewer;
};

class OidcLogin {
 public:
  OidcLogin(OidcSettings settings, SignedCookie cookies, std::function<double()> now);

  // GET /login without `code`: a 302 to the provider (and the state cookie).
  HttpResponse Start(const HttpRequest& req);
  // GET /login?code=...&state=...: verifies everything, then a 302 to the page asked for, with the
  // session cookie. Refusals are 403 pages with the reason (never a token or secret).
  HttpResponse Callback(const HttpRequest& req);
  // GET /logout: clears the session cookie.
  HttpResponse Logout(const HttpRequest& req) const;
  // Where a browser without a session is sent: /login?next=<path>.
  std::string LoginUrl(const HttpRequest& req) const;
  // The session in the request's cookie, if valid.
  std::optional<OidcSession> SessionFrom(const HttpRequest& req) const;

  static constexpr const char* kSessionCookie = "stalk_session";
  static constexpr const char* kStateCookie = "stalk_oidc";

 private:
  struct Discovery {
    std::string issuer, authorization_endpoint, token_endpoint, jwks_uri;
  };
  Result<Discovery> Discover();
  Result<std::vector<Jwk>> Keys(bool refresh);
  Result<nlohmann::json> VerifyIdToken(const std::string& id_token, const std::string& nonce);
  // GitHub: the access token's primary verified e-mail address.
  Result<std::string> GithubEmail(const std::string& access_token);
  bool github() const { return settings_.provider == "github"; }
  std::string CookieHeader(const std::string& name, const std::string& value, double max_age,
                           const HttpRequest& req) const;
  std::string Prefixed(const std::string& path) const;

  OidcSettings settings_;
  SignedCookie cookies_;
  std::function<double()> now_;
  std::regex email_re_;
  HttpClientOptions http_;
  std::mutex mu_;
  std::optional<Discovery> discovery_;  // guarded by mu_
  std::vector<Jwk> keys_;               // guarded by mu_
};

// GET /login (start, or the provider's callback when `code` is present) and GET /logout.
void RegisterOidcRoutes(Router& router, OidcLogin& login);

}  // namespace stalk
