// Stalk — Celery monitoring server.
// Router: method + path -> handler. Exact routes ("/api/tasks") and prefix routes
// ("/api/task/info/" + the rest as the path parameter). Route groups register themselves through
// one function each (see api_routes.h), all wired in cli/serve.cc, so every route is one grep away.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http_request.h"

namespace stalk {

class Router {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&, const std::string& param)>;
  // Called before any handler (auth/auth_guard.h): nullopt lets the request through, a response
  // replaces the handler's. `required_role` is RequiredRole(method, path).
  using Guard = std::function<std::optional<HttpResponse>(const HttpRequest&, std::string_view required_role)>;

  void Get(std::string path, Handler h) { Add("GET", std::move(path), false, std::move(h)); }
  void GetPrefix(std::string prefix, Handler h) { Add("GET", std::move(prefix), true, std::move(h)); }
  void Post(std::string path, Handler h) { Add("POST", std::move(path), false, std::move(h)); }
  void PostPrefix(std::string prefix, Handler h) { Add("POST", std::move(prefix), true, std::move(h)); }
  void Add(std::string method, std::string path, bool prefix, Handler h);

  void SetGuard(Guard g) { guard_ = std::move(g); }

  // 404 for an unknown path, 405 for a known path with another method. Runs the guard first and
  // adds the security headers (CSP, X-Frame-Options, ...) to every response.
  HttpResponse Dispatch(const HttpRequest& req) const;

  // "admin" under /api/admin, "viewer" for GET/HEAD/OPTIONS, else "operator".
  static std::string_view RequiredRole(std::string_view method, std::string_view path);
  // Adds the security headers a handler did not set itself.
  static void AddSecurityHeaders(HttpResponse& resp);

 private:
  HttpResponse FindAndRun(const HttpRequest& req) const;

  struct Route {
    std::string method, path;
    bool prefix;
    Handler handler;
  };
  std::vector<Route> routes_;
  Guard guard_;
};

}  // namespace stalk
