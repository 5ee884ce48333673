// Stalk — Celery monitoring server.
// fuzz_auth: the credentials a request carries — Authorization (Basic, Bearer), the OIDC session
// cookie, Origin/Referer/Host and X-Forwarded-* — through AuthGuard::Check, as the Router's guard runs
// it before any handler. The first byte picks the guard (Basic users and API tokens, or OIDC) and the
// role the route needs; the rest is a request (fuzz_request.h). Nobody may get in without a credential
// Stalk issued, nor above that credential's role, and every refusal is a real status with a JSON
// or text body.
#include <cctype>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "auth/auth_guard.h"
#include "auth/oidc.h"
#include "auth/secrets.h"
#include "auth/signed_cookie.h"
#include "common/base64.h"
#include "common/log.h"
#include "fuzz_request.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {
namespace {

constexpr std::string_view kAdminUser = "admin";
constexpr std::string_view kAdminPassword = "stalk_fuzz_admin_password";
constexpr std::string_view kViewerToken = "stalk_fuzz_viewer_token_0123456789";
constexpr double kAuthNow = 1700000000.0;

LoginLimiter::Options NoLockout() {
  // Lockouts would turn every later input into a 429 and make results depend on input order.
  LoginLimiter::Options o;
  o.max_failures = 1 << 30;
  return o;
}

AuthGuard& CredentialGuard() {
  static AuthGuard* guard = [] {
    SetLogLevel("error");  // the audit log would write a line per admitted operator call
    CredentialStore store;
    FuzzCheck(store.AddBasicAuthList(std::string(kAdminUser) + ":" + std::string(kAdminPassword)).ok(), "users");
    FuzzCheck(store.AddTokensFileText(Sha256Hex(kViewerToken) + ":viewer:fuzz\n", "tokens").ok(), "tokens");
    AuthOptions options;
    options.limiter = NoLockout();
    return new AuthGuard(std::move(store), options, [] { return kAuthNow; });
  }();
  return *guard;
}

AuthGuard& OidcGuard() {
  static AuthGuard* guard = [] {
    SetLogLevel("error");
    AuthOptions options;
    options.limiter = NoLockout();
    auto* g = new AuthGuard(CredentialStore(), options, [] { return kAuthNow; });
    OidcSettings settings;
    settings.provider = "oidc";
    settings.issuer = "https://idp.invalid";  // never contacted: only /login would, and Check does not
    settings.client_id = "stalk";
    settings.redirect_uri = "https://stalk.invalid/login";
    settings.email_regex = ".*@example\\.com";
    g->SetOidc(std::make_shared<OidcLogin>(settings, SignedCookie("stalk_fuzz_cookie_key_0123456789abcdef"),
                                           [] { return kAuthNow; }));
    return g;
  }();
  return *guard;
}

// The role the request's Authorization header proves, judged independently of the guard.
std::optional<Role> ProvenRole(const HttpRequest& r) {
  const std::string header = r.Header("authorization");
  std::string_view auth = header;
  while (!auth.empty() && (auth.front() == ' ' || auth.front() == '\t'))
    auth.remove_prefix(1);
  while (!auth.empty() && (auth.back() == ' ' || auth.back() == '\t'))
    auth.remove_suffix(1);
  const size_t space = auth.find(' ');
  if (space == std::string_view::npos)
    return std::nullopt;
  std::string scheme(auth.substr(0, space));
  for (char& c : scheme)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view value = auth.substr(space + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
    value.remove_prefix(1);
  if (scheme == "bearer")
    return value == kViewerToken ? std::optional(Role::kViewer) : std::nullopt;
  std::string decoded;
  if (scheme == "basic" && Base64Decode(value, decoded) &&
      decoded == std::string(kAdminUser) + ":" + std::string(kAdminPassword))
    return Role::kAdmin;
  return std::nullopt;
}

}  // namespace

int FuzzAuth(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  static constexpr std::string_view kRoles[] = {"viewer", "operator", "admin", "root"};
  const bool oidc = (data[0] & 1) != 0;
  const std::string_view required = kRoles[(data[0] >> 1) % 4];
  const HttpRequest r = RequestFromText(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));

  // What the guard reads besides credentials must never fail on its own.
  for (bool xheaders : {false, true}) {
    CheckOrigin(r, xheaders);
    FuzzCheck(!ClientAddress(r, xheaders).empty() || xheaders, "the peer address is known without xheaders");
  }
  const std::string session = CookieValue(r.Header("cookie"), OidcLogin::kSessionCookie);
  FuzzCheck(!SignedCookie("stalk_fuzz_cookie_key_0123456789abcdef").Verify(session, kAuthNow),
            "a cookie Stalk never signed does not verify");

  AuthGuard& guard = oidc ? OidcGuard() : CredentialGuard();
  const std::optional<HttpResponse> refused = guard.Check(r, required);
  if (refused) {
    const int s = refused->status;
    FuzzCheck(s == 302 || s == 401 || s == 403 || s == 429, "a refusal is 302, 401, 403 or 429");
    if (refused->content_type.starts_with("application/json"))
      CheckValidJson(refused->body, "refusal body");
    return 0;
  }
  // Let through: a public path, or a credential Stalk issued with a role high enough.
  if (r.path == "/healthcheck" || r.path == "/healthcheck/" || (oidc && (r.path == "/login" || r.path == "/logout")))
    return 0;
  const std::optional<Role> proven = ProvenRole(r);
  FuzzCheck(proven.has_value(), "let through only with a valid credential");
  FuzzCheck(RoleAllows(*proven, ParseRole(required).value_or(Role::kAdmin)), "let through only with the role");
  return 0;
}

}  // namespace stalk::fuzz
