// Stalk — Celery monitoring server.
#include "http/alert_routes.h"

#include <memory>

namespace stalk {

void RegisterAlertApi(Router& router, AlertApi api) {
  auto shared = std::make_shared<AlertApi>(std::move(api));
  router.Get("/api/alerts",
             [shared](const HttpRequest&, const std::string&) { return HttpResponse::Json(shared->alerts_json()); });
  router.Get("/api/alerts/silences",
             [shared](const HttpRequest&, const std::string&) { return HttpResponse::Json(shared->silences_json()); });
  router.Post("/api/alerts/silences", [shared](const HttpRequest& req, const std::string&) {
    auto id = shared->add_silence(req.body);
    if (!id)
      return HttpResponse::Error(400, id.error());
    std::string body = "{\"id\": \"" + *id + "\"}";  // ids are hex
    return HttpResponse::Json(std::move(body), 201);
  });
  router.Add("DELETE", "/api/alerts/silences/", true, [shared](const HttpRequest&, const std::string& id) {
    if (!shared->remove_silence(id))
      return HttpResponse::Error(404, "Unknown silence");
    return HttpResponse::Json("{\"deleted\": true}");
  });
}

}  // namespace stalk
