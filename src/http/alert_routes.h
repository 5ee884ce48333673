// Stalk — Celery monitoring server.
// The alerting API routes; the work is done by alerts/AlertEngine, reached through the functions of
// AlertApi (wired in cli/serve.cc) so this layer does not link alerts/. GETs need the viewer role,
// creating and deleting silences the operator role (Router::RequiredRole).
//
//   GET    /api/alerts                      alerts (pending, firing, recently resolved) and rules
//   GET    /api/alerts/silences             silences
//   POST   /api/alerts/silences             {"matchers": {"alertname": "X"}, "duration": "2h", "comment": ""}
//   DELETE /api/alerts/silences/<id>
#pragma once

#include <functional>
#include <string>

#include "common/result.h"
#include "http/router.h"

namespace stalk {

struct AlertApi {
  std::function<std::string()> alerts_json;
  std::function<std::string()> silences_json;
  std::function<Result<std::string>(const std::string& body)> add_silence;  // the new id, or a 400 text
  std::function<bool(const std::string& id)> remove_silence;                // false: unknown id
};

void RegisterAlertApi(Router& router, AlertApi api);

}  // namespace stalk
