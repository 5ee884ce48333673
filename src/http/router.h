// Stalk — Celery monitoring server.
// Router: method + path -> handler. Exact routes ("/api/tasks") and prefix routes
// ("/api/task/info/" + the rest as the path parameter). Route groups register themselves through
// one function each (see api_routes.h), all wired in cli/serve.cc, so every route is one grep away.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "http/http_request.h"

namespace stalk {

class Router {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&, const std::string& param)>;

  void Get(std::string path, Handler h) { Add("GET", std::move(path), false, std::move(h)); }
  void GetPrefix(std::string prefix, Handler h) { Add("GET", std::move(prefix), true, std::move(h)); }
  void Add(std::string method, std::string path, bool prefix, Handler h);

  // 404 for an unknown path, 405 for a known path with another method.
  HttpResponse Dispatch(const HttpRequest& req) const;

 private:
  struct Route {
    std::string method, path;
    bool prefix;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace stalk
