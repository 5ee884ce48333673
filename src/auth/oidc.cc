// Stalk — Celery monitoring server.
#include "auth/oidc.h"

#include <openssl/rand.h>

#include <array>

#include "auth/secrets.h"
#include "common/log.h"

namespace stalk {
namespace {

std::string RandomToken() {
  std::array<unsigned char, 24> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return {};
  }
  return Base64UrlEncode(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

std::string Lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string TrimSlash(std::string s) {
  while (!s.empty() && s.back() == '/') {
    s.pop_back();
  }
  return s;
}

HttpResponse Redirect(const std::string& location) {
  HttpResponse r = HttpResponse::Text("", 302);
  r.headers["Location"] = location;
  return r;
}

HttpResponse Refuse(const std::string& why) {
  Logger("auth")->warn("OIDC login refused: {}", why);
  return HttpResponse::Error(403, "login refused: " + why);
}

// Only same-site paths may be returned to after login (no open redirect).
std::string SafeNext(const std::string& next) {
  if (next.empty() || next[0] != '/' || next.starts_with("//") || next.find('\\') != std::string::npos ||
      next.find_first_of("\r\n") != std::string::npos) {
    return "/";
  }
  return next;
}

}  // namespace

Result<OidcSettings> ResolveOidcSettings(OidcSettings s) {
  std::string p = Lower(s.provider);
  // Flower's handler class names: flower.views.auth.GoogleAuth2LoginHandler, ...
  for (const char* name : {"google", "github", "gitlab", "okta"}) {
    if (p.find(name) != std::string::npos) {
      p = name;
    }
  }
  if (p == "github" && s.issuer.empty()) {
    s.issuer = "https://github.com";  // GitHub Enterprise: its base URL
  }
  if (p == "google" && s.issuer.empty()) {
    s.issuer = "https://accounts.google.com";
  } else if (p == "gitlab" && s.issuer.empty()) {
    s.issuer = "https://gitlab.com";
  } else if (p != "google" && p != "gitlab" && p != "okta" && p != "github" && p != "oidc" && !p.empty()) {
    return Error{"--auth_provider " + s.provider + " is unknown (google, github, gitlab, okta or oidc)"};
  }
  if (s.issuer.empty()) {
    return Error{"OIDC login needs --oidc_issuer (the provider's issuer URL)"};
  }
  if (s.client_id.empty() || s.client_secret.empty()) {
    return Error{"OIDC login needs --oauth2_key and --oauth2_secret (set the secret in STALK_OAUTH2_SECRET)"};
  }
  if (s.redirect_uri.empty()) {
    return Error{"OIDC login needs --oauth2_redirect_uri (Stalk's /login URL as registered with the provider)"};
  }
  try {
    std::regex check(s.email_regex.empty() ? ".*" : s.email_regex);
  } catch (const std::regex_error& e) {
    return Error{"--auth: invalid regular expression: " + std::string(e.what())};
  }
  s.issuer = TrimSlash(s.issuer);
  s.provider = p.empty() ? "oidc" : p;
  return s;
}

OidcLogin::OidcLogin(OidcSettings settings, SignedCookie cookies, std::function<double()> now)
    : settings_(std::move(settings)),
      cookies_(std::move(cookies)),
      now_(std::move(now)),
      email_re_(settings_.email_regex.empty() ? ".*" : settings_.email_regex) {
  http_.ca_file = settings_.ca_file;
}

Result<OidcLogin::Discovery> OidcLogin::Discover() {
  {
    std::lock_guard lock(mu_);
    if (discovery_) {
      return *discovery_;
    }
  }
  if (github()) {
    // No discovery document: GitHub's OAuth2 endpoints, and its API (api.github.com, or /api/v3 on
    // GitHub Enterprise) where `jwks_uri` would be.
    const std::string api =
        settings_.issuer == "https://github.com" ? "https://api.github.com" : settings_.issuer + "/api/v3";
    Discovery d{settings_.issuer, settings_.issuer + "/login/oauth/authorize",
                settings_.issuer + "/login/oauth/access_token", api};
    std::lock_guard lock(mu_);
    discovery_ = d;
    return d;
  }
  const std::string url = settings_.issuer + "/.well-known/openid-configuration";
  auto r = HttpGet(url, http_);
  if (!r) {
    return Error{"OIDC discovery: " + r.error()};
  }
  if (r->status != 200) {
    return Error{"OIDC discovery: " + url + " answered HTTP " + std::to_string(r->status)};
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  Discovery d;
  if (doc.is_object()) {
    d.issuer = doc.value("issuer", "");
    d.authorization_endpoint = doc.value("authorization_endpoint", "");
    d.token_endpoint = doc.value("token_endpoint", "");
    d.jwks_uri = doc.value("jwks_uri", "");
  }
  if (d.authorization_endpoint.empty() || d.token_endpoint.empty() || d.jwks_uri.empty()) {
    return Error{"OIDC discovery: " + url + " lacks authorization_endpoint, token_endpoint or jwks_uri"};
  }
  if (TrimSlash(d.issuer) != settings_.issuer) {
    return Error{"OIDC discovery: issuer " + d.issuer + " does not match --oidc_issuer " + settings_.issuer};
  }
  std::lock_guard lock(mu_);
  discovery_ = d;
  return d;
}

Result<std::vector<Jwk>> OidcLogin::Keys(bool refresh) {
  {
    std::lock_guard lock(mu_);
    if (!refresh && !keys_.empty()) {
      return keys_;
    }
  }
  auto d = Discover();
  if (!d) {
    return Error{d.error()};
  }
  auto r = HttpGet(d->jwks_uri, http_);
  if (!r) {
    return Error{"OIDC keys: " + r.error()};
  }
  if (r->status != 200) {
    return Error{"OIDC keys: " + d->jwks_uri + " answered HTTP " + std::to_string(r->status)};
  }
  auto keys = ParseJwks(r->body);
  if (!keys) {
    return Error{"OIDC keys: " + keys.error()};
  }
  std::lock_guard lock(mu_);
  keys_ = *keys;
  return *keys;
}

std::string OidcLogin::Prefixed(const std::string& path) const {
  return settings_.url_prefix.empty() ? path : "/" + settings_.url_prefix + path;
}

std::string OidcLogin::LoginUrl(const HttpRequest& req) const { return Prefixed("/login?next=" + UrlEncode(req.path)); }

std::string OidcLogin::CookieHeader(const std::string& name, const std::string& value, double max_age,
                                    const HttpRequest& req) const {
  const bool secure = settings_.tls || (settings_.xheaders && req.Header("x-forwarded-proto") == "https");
  std::string h = name + "=" + value + "; Path=" + Prefixed("/") +
                  "; HttpOnly; SameSite=Lax; Max-Age=" + std::to_string(static_cast<long long>(max_age));
  if (secure) {
    h += "; Secure";
  }
  return h;
}

HttpResponse OidcLogin::Start(const HttpRequest& req) {
  auto d = Discover();
  if (!d) {
    Logger("auth")->error("{}", d.error());
    return HttpResponse::Error(503, "the login provider is unreachable; try again shortly");
  }
  const std::string state = RandomToken();
  const std::string nonce = RandomToken();
  if (state.empty() || nonce.empty()) {
    return HttpResponse::Error(500, "the system random generator failed");
  }
  auto it = req.query.find("next");
  const std::string next = SafeNext(it == req.query.end() ? "/" : it->second);
  const double expires = now_() + 600;
  const std::string cookie = cookies_.Sign(state + "\n" + nonce + "\n" + next, expires);
  std::string url = d->authorization_endpoint;
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += "response_type=code&scope=" + UrlEncode(github() ? "read:user user:email" : "openid email profile") +
         "&client_id=" + UrlEncode(settings_.client_id) + "&redirect_uri=" + UrlEncode(settings_.redirect_uri) +
         "&state=" + UrlEncode(state) + "&nonce=" + UrlEncode(nonce);
  HttpResponse r = Redirect(url);
  r.headers["Set-Cookie"] = CookieHeader(kStateCookie, cookie, 600, req);
  return r;
}

Result<nlohmann::json> OidcLogin::VerifyIdToken(const std::string& id_token, const std::string& nonce) {
  auto keys = Keys(false);
  if (!keys) {
    return Error{keys.error()};
  }
  auto claims = VerifyRs256Jwt(id_token, *keys);
  if (!claims && claims.error().find("unknown key") != std::string::npos) {
    keys = Keys(true);  // the provider rotated its keys
    if (!keys) {
      return Error{keys.error()};
    }
    claims = VerifyRs256Jwt(id_token, *keys);
  }
  if (!claims) {
    return Error{claims.error()};
  }
  const nlohmann::json& c = *claims;
  if (TrimSlash(c.value("iss", "")) != settings_.issuer) {
    return Error{"id_token issuer is not " + settings_.issuer};
  }
  bool audience_ok = false;
  if (c.contains("aud") && c["aud"].is_string()) {
    audience_ok = c["aud"] == settings_.client_id;
  } else if (c.contains("aud") && c["aud"].is_array()) {
    for (const auto& a : c["aud"]) {
      audience_ok = audience_ok || a == settings_.client_id;
    }
  }
  if (!audience_ok) {
    return Error{"id_token is not for this client"};
  }
  const double now = now_();
  if (!c.contains("exp") || !c["exp"].is_number() || c["exp"].get<double>() < now - 60) {
    return Error{"id_token has expired"};
  }
  if (c.contains("iat") && c["iat"].is_number() && c["iat"].get<double>() > now + 300) {
    return Error{"id_token is issued in the future"};
  }
  if (!c.contains("nonce") || !c["nonce"].is_string() || c["nonce"] != nonce) {
    return Error{"id_token nonce does not match this login"};
  }
  return claims;
}

Result<std::string> OidcLogin::GithubEmail(const std::string& access_token) {
  auto d = Discover();
  if (!d) {
    return Error{d.error()};
  }
  HttpClientOptions api = http_;
  api.headers = {"Authorization: Bearer " + access_token, "Accept: application/vnd.github+json"};
  auto r = HttpGet(d->jwks_uri + "/user/emails", api);
  if (!r) {
    return Error{"GitHub API: " + r.error()};
  }
  auto doc = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !doc.is_array()) {
    return Error{"GitHub API /user/emails answered HTTP " + std::to_string(r->status)};
  }
  std::string verified;
  for (const auto& e : doc) {
    if (!e.is_object() || !e.contains("email") || !e["email"].is_string() || e.value("verified", false) != true) {
      continue;
    }
    if (e.value("primary", false)) {
      return e["email"].get<std::string>();
    }
    if (verified.empty()) {
      verified = e["email"].get<std::string>();
    }
  }
  if (verified.empty()) {
    return Error{"the GitHub account has no verified e-mail address"};
  }
  return verified;
}

HttpResponse OidcLogin::Callback(const HttpRequest& req) {
  auto get = [&req](const char* key) {
    auto it = req.query.find(key);
    return it == req.query.end() ? std::string() : it->second;
  };
  if (!get("error").empty()) {
    return Refuse("the provider answered " + get("error"));
  }
  const auto state_cookie = cookies_.Verify(CookieValue(req.Header("cookie"), kStateCookie), now_());
  if (!state_cookie) {
    return Refuse("no valid login in progress (the state cookie is missing, forged or expired)");
  }
  const size_t nl1 = state_cookie->find('\n');
  const size_t nl2 = nl1 == std::string::npos ? nl1 : state_cookie->find('\n', nl1 + 1);
  if (nl2 == std::string::npos) {
    return Refuse("malformed state cookie");
  }
  const std::string state = state_cookie->substr(0, nl1);
  const std::string nonce = state_cookie->substr(nl1 + 1, nl2 - nl1 - 1);
  const std::string next = SafeNext(state_cookie->substr(nl2 + 1));
  if (!ConstantTimeEquals(state, get("state"))) {
    return Refuse("state does not match this login");
  }
  auto d = Discover();
  if (!d) {
    Logger("auth")->error("{}", d.error());
    return HttpResponse::Error(503, "the login provider is unreachable; try again shortly");
  }
  HttpClientOptions token_http = http_;
  token_http.headers.emplace_back("Accept: application/json");  // GitHub answers form-encoded otherwise
  auto token = HttpPostForm(
      d->token_endpoint,
      {{"grant_type", "authorization_code"}, {"code", get("code")}, {"redirect_uri", settings_.redirect_uri}},
      settings_.client_id, settings_.client_secret, token_http);
  if (!token) {
    return Refuse("token endpoint: " + token.error());
  }
  auto doc = nlohmann::json::parse(token->body, nullptr, false);
  std::string email;
  if (github()) {
    if (token->status != 200 || !doc.is_object() || !doc.contains("access_token") || !doc["access_token"].is_string()) {
      return Refuse("the token endpoint answered HTTP " + std::to_string(token->status) + " without an access_token");
    }
    auto found = GithubEmail(doc["access_token"].get<std::string>());
    if (!found) {
      return Refuse(found.error());
    }
    email = *found;
  } else {
    if (token->status != 200 || !doc.is_object() || !doc.contains("id_token") || !doc["id_token"].is_string()) {
      return Refuse("the token endpoint answered HTTP " + std::to_string(token->status) + " without an id_token");
    }
    auto claims = VerifyIdToken(doc["id_token"].get<std::string>(), nonce);
    if (!claims) {
      return Refuse(claims.error());
    }
    email = claims->value("email", "");
    if (email.empty()) {
      return Refuse("the id_token carries no e-mail address (ask for the email scope)");
    }
    if (claims->contains("email_verified") && (*claims)["email_verified"] == false) {
      return Refuse("the e-mail address " + email + " is not verified");
    }
  }
  if (!std::regex_match(email, email_re_)) {
    return Refuse(email + " is not allowed by --auth");
  }
  Logger("auth")->info("OIDC login: {} (role {})", email, RoleName(settings_.role));
  const std::string session =
      cookies_.Sign(email + "\n" + std::string(RoleName(settings_.role)), now_() + settings_.session_seconds);
  HttpResponse r = Redirect(Prefixed(next));
  r.headers["Set-Cookie"] = CookieHeader(kSessionCookie, session, settings_.session_seconds, req);
  return r;
}

HttpResponse OidcLogin::Logout(const HttpRequest& req) const {
  HttpResponse r = HttpResponse::Text("logged out\n");
  r.headers["Set-Cookie"] = CookieHeader(kSessionCookie, "", 0, req);
  return r;
}

std::optional<OidcSession> OidcLogin::SessionFrom(const HttpRequest& req) const {
  const std::string value = CookieValue(req.Header("cookie"), kSessionCookie);
  if (value.empty()) {
    return std::nullopt;
  }
  auto payload = cookies_.Verify(value, now_());
  if (!payload) {
    return std::nullopt;
  }
  const size_t nl = payload->find('\n');
  if (nl == std::string::npos) {
    return std::nullopt;
  }
  auto role = ParseRole(payload->substr(nl + 1));
  if (!role) {
    return std::nullopt;
  }
  return OidcSession{payload->substr(0, nl), *role};
}

void RegisterOidcRoutes(Router& router, OidcLogin& login) {
  router.Get("/login", [&login](const HttpRequest& req, const std::string&) {
    return req.query.count("code") > 0 || req.query.count("error") > 0 ? login.Callback(req) : login.Start(req);
  });
  router.Get("/logout", [&login](const HttpRequest& req, const std::string&) { return login.Logout(req); });
}

}  // namespace stalk
