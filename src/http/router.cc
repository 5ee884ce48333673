// Stalk — Celery monitoring server.
#include "http/router.h"

namespace stalk {

void Router::Add(std::string method, std::string path, bool prefix, Handler h) {
  routes_.push_back(Route{std::move(method), std::move(path), prefix, std::move(h)});
}

std::string_view Router::RequiredRole(std::string_view method, std::string_view path) {
  if (path == "/api/admin" || path.starts_with("/api/admin/")) {
    return "admin";
  }
  if (method == "GET" || method == "HEAD" || method == "OPTIONS") {
    return "viewer";
  }
  return "operator";
}

void Router::AddSecurityHeaders(HttpResponse& resp) {
  resp.headers.emplace("Content-Security-Policy",
                       "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'");
  resp.headers.emplace("X-Frame-Options", "DENY");
  resp.headers.emplace("Referrer-Policy", "no-referrer");
  resp.headers.emplace("X-Content-Type-Options", "nosniff");
}

HttpResponse Router::Dispatch(const HttpRequest& req) const {
  std::optional<HttpResponse> denied;
  if (guard_) {
    denied = guard_(req, RequiredRole(req.method, req.path));
  }
  HttpResponse resp = denied ? std::move(*denied) : FindAndRun(req);
  AddSecurityHeaders(resp);
  return resp;
}

HttpResponse Router::FindAndRun(const HttpRequest& req) const {
  bool path_known = false;
  for (const Route& r : routes_) {
    std::string param;
    if (r.prefix) {
      if (!req.path.starts_with(r.path) || req.path.size() == r.path.size()) {
        continue;
      }
      param = req.path.substr(r.path.size());
    } else if (req.path != r.path && req.path != r.path + "/") {
      continue;
    }
    path_known = true;
    if (r.method == req.method || (r.method == "GET" && req.method == "HEAD")) {
      return r.handler(req, param);
    }
  }
  if (path_known) {
    return HttpResponse::Error(405, "method not allowed");
  }
  return HttpResponse::Error(404, "not found");
}

}  // namespace stalk
