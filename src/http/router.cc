// Stalk — Celery monitoring server.
#include "http/router.h"

namespace stalk {

void Router::Add(std::string method, std::string path, bool prefix, Handler h) {
  routes_.push_back(Route{std::move(method), std::move(path), prefix, std::move(h)});
}

HttpResponse Router::Dispatch(const HttpRequest& req) const {
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
