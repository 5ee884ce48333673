// Stalk — Celery monitoring server.
#include "auth/auth_guard.h"

#include <cmath>

#include "common/audit_log.h"
#include "common/base64.h"
#include "common/log.h"

namespace stalk {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string_view TrimSpaces(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t");
  if (a == std::string_view::npos) {
    return {};
  }
  const size_t b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

// "https://host:port/path" -> "host:port"; empty when it is not an absolute http(s) URL.
std::string Authority(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return {};
  }
  const std::string scheme = Lower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") {
    return {};
  }
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  return Lower(rest);
}

// Both forms of a default port compare equal: "host" == "host:80" for http, ":443" for https.
std::string StripDefaultPort(std::string authority, std::string_view url) {
  const bool https = Lower(url.substr(0, 6)) == "https:";
  const std::string port = https ? ":443" : ":80";
  if (authority.ends_with(port)) {
    authority.resize(authority.size() - port.size());
  }
  return authority;
}

}  // namespace

bool IsStateChanging(std::string_view method) { return method != "GET" && method != "HEAD" && method != "OPTIONS"; }

OriginCheck CheckOrigin(const HttpRequest& req, bool xheaders) {
  std::string host = xheaders ? req.Header("x-forwarded-host") : std::string();
  if (host.empty()) {
    host = req.Header("host");
  }
  host = Lower(TrimSpaces(host.substr(0, host.find(','))));
  std::string source = req.Header("origin");
  if (source.empty() || source == "null") {
    source = req.Header("referer");
  }
  if (source.empty()) {
    return req.Header("origin") == "null" ? OriginCheck::kCrossOrigin : OriginCheck::kAbsent;
  }
  const std::string authority = Authority(source);
  if (authority.empty() || host.empty()) {
    return OriginCheck::kCrossOrigin;
  }
  const bool same = StripDefaultPort(authority, source) == StripDefaultPort(host, source);
  return same ? OriginCheck::kSameOrigin : OriginCheck::kCrossOrigin;
}

std::string ClientAddress(const HttpRequest& req, bool xheaders) {
  if (xheaders) {
    if (std::string real = std::string(TrimSpaces(req.Header("x-real-ip"))); !real.empty()) {
      return real;
    }
    const std::string fwd = req.Header("x-forwarded-for");
    if (!fwd.empty()) {
      const size_t comma = fwd.rfind(',');
      std::string last(TrimSpaces(comma == std::string::npos ? fwd : fwd.substr(comma + 1)));
      if (!last.empty()) {
        return last;
      }
    }
  }
  return req.remote_addr.empty() ? "unknown" : req.remote_addr;
}

AuthGuard::AuthGuard(CredentialStore store, AuthOptions options, LoginLimiter::Clock clock)
    : store_(std::move(store)), opt_(options), limiter_(options.limiter, std::move(clock)) {}

HttpResponse AuthGuard::Unauthorized(std::string_view message) const {
  HttpResponse r = HttpResponse::Error(401, message);
  if (store_.HasBasicAuth()) {
    r.headers["WWW-Authenticate"] = "Basic realm=\"stalk\", charset=\"UTF-8\"";
  }
  return r;
}

std::optional<HttpResponse> AuthGuard::LockedOut(const std::string& key) {
  const double left = limiter_.LockedFor(key);
  if (left <= 0) {
    return std::nullopt;
  }
  counters_.locked_out.fetch_add(1, std::memory_order_relaxed);
  HttpResponse r = HttpResponse::Error(429, "too many failed logins; try again later");
  r.headers["Retry-After"] = std::to_string(static_cast<long long>(std::ceil(left)));
  return r;
}

void AuthGuard::Audit(const HttpRequest& req, std::string_view who, std::string_view role) const {
  SetAuditActor(AuditActor{std::string(who), std::string(role), ClientAddress(req, opt_.xheaders)});
  Logger("audit")->info("user={} role={} method={} path={} remote={}", who, role, req.method, req.path,
                        ClientAddress(req, opt_.xheaders));
}

std::optional<HttpResponse> AuthGuard::Check(const HttpRequest& req, std::string_view required_role) {
  SetAuditActor(AuditActor{"-", "anonymous", ClientAddress(req, opt_.xheaders)});
  if (req.path == "/healthcheck" || req.path == "/healthcheck/") {
    return std::nullopt;
  }
  const Role need = ParseRole(required_role).value_or(Role::kAdmin);
  const bool changes_state = IsStateChanging(req.method);
  const OriginCheck origin = changes_state ? CheckOrigin(req, opt_.xheaders) : OriginCheck::kSameOrigin;

  if (!Enabled()) {
    // Open mode (Flower's default): a cross-site page still must not drive the control routes.
    if (origin == OriginCheck::kCrossOrigin) {
      counters_.cross_site.fetch_add(1, std::memory_order_relaxed);
      return HttpResponse::Error(403, "cross-site request refused (Origin does not match Host)");
    }
    if (need != Role::kViewer) {
      Audit(req, "-", "open");
    }
    return std::nullopt;
  }
  if (opt_.metrics_public && (req.path == "/metrics" || req.path == "/metrics/") && !changes_state) {
    return std::nullopt;
  }

  const std::string authorization(TrimSpaces(req.Header("authorization")));
  if (oidc_) {
    if (req.path == "/login" || req.path == "/logout") {
      return std::nullopt;
    }
    if (authorization.empty()) {
      if (auto session = oidc_->SessionFrom(req)) {
        return Admit(req, Principal{session->email, session->role}, need, changes_state, /*bearer=*/false, origin);
      }
      if (!changes_state && req.Header("accept").find("text/html") != std::string::npos) {
        counters_.unauthenticated.fetch_add(1, std::memory_order_relaxed);
        HttpResponse r = HttpResponse::Text("login required\n", 302);
        r.headers["Location"] = oidc_->LoginUrl(req);
        return r;
      }
    }
  }
  if (authorization.empty()) {
    counters_.unauthenticated.fetch_add(1, std::memory_order_relaxed);
    return Unauthorized("authentication required");
  }
  const std::string ip_key = "ip:" + ClientAddress(req, opt_.xheaders);
  if (auto locked = LockedOut(ip_key)) {
    return locked;
  }

  std::optional<Principal> who;
  bool bearer = false;
  const size_t space = authorization.find(' ');
  const std::string scheme = Lower(authorization.substr(0, space));
  const std::string_view value =
      space == std::string::npos ? std::string_view() : TrimSpaces(std::string_view(authorization).substr(space + 1));
  if (scheme == "bearer") {
    bearer = true;
    who = store_.CheckToken(value);
    if (!who) {
      limiter_.RecordFailure(ip_key);
      counters_.invalid_credentials.fetch_add(1, std::memory_order_relaxed);
      return Unauthorized("invalid token");
    }
  } else if (scheme == "basic") {
    std::string decoded;
    const size_t colon = Base64Decode(value, decoded) ? decoded.find(':') : std::string::npos;
    if (colon == std::string::npos) {
      limiter_.RecordFailure(ip_key);
      counters_.invalid_credentials.fetch_add(1, std::memory_order_relaxed);
      return Unauthorized("malformed Basic credentials");
    }
    const std::string user = decoded.substr(0, colon);
    const std::string user_key = "user:" + user;
    if (auto locked = LockedOut(user_key)) {
      return locked;
    }
    who = store_.CheckBasic(user, std::string_view(decoded).substr(colon + 1));
    if (!who) {
      limiter_.RecordFailure(ip_key);
      limiter_.RecordFailure(user_key);
      static RateLimiter log_limit;
      if (log_limit.Allow()) {
        Logger("auth")->warn("failed login from {} (further failures are counted, logged once a minute)",
                             ClientAddress(req, opt_.xheaders));
      }
      counters_.invalid_credentials.fetch_add(1, std::memory_order_relaxed);
      return Unauthorized("invalid user name or password");
    }
  } else {
    counters_.invalid_credentials.fetch_add(1, std::memory_order_relaxed);
    return Unauthorized("unsupported authorization scheme");
  }

  return Admit(req, *who, need, changes_state, bearer, origin);
}

std::optional<HttpResponse> AuthGuard::Admit(const HttpRequest& req, const Principal& who, Role need,
                                             bool changes_state, bool bearer, OriginCheck origin) {
  if (!RoleAllows(who.role, need)) {
    counters_.forbidden.fetch_add(1, std::memory_order_relaxed);
    return HttpResponse::Error(403, "forbidden: role " + std::string(RoleName(who.role)) + " may not " + req.method +
                                        " this route (needs " + std::string(RoleName(need)) + ")");
  }
  if (changes_state && !bearer && origin != OriginCheck::kSameOrigin) {
    counters_.cross_site.fetch_add(1, std::memory_order_relaxed);
    return HttpResponse::Error(403,
                               "cross-site request refused: send Origin or Referer matching Host, or use a "
                               "bearer token");
  }
  SetAuditActor(AuditActor{who.name, std::string(RoleName(who.role)), ClientAddress(req, opt_.xheaders)});
  if (need != Role::kViewer) {
    Audit(req, who.name, RoleName(who.role));
  }
  return std::nullopt;
}

}  // namespace stalk
