// Stalk — Celery monitoring server.
// HTTP and /metrics faces of custom events and cost:
//   GET /api/stalk/custom-events            counts by custom event type
//   GET /api/stalk/cost?group=name|queue|worker&limit=N   top consumers of worker time since start
// and the families stalk_custom_events_total{type,kind}, stalk_task_worker_seconds_total{task,queue},
// stalk_worker_busy_seconds_total{worker}, stalk_task_cost_total{task,queue} (with a price per hour).
#pragma once

#include <string>

#include "custom/cost_ledger.h"
#include "custom/custom_events.h"
#include "http/router.h"

namespace stalk {

struct CustomApi {
  CustomEvents* events = nullptr;
  CostLedger* cost = nullptr;
  double cost_per_worker_hour = 0;  // --cost_per_worker_hour; 0: seconds only
};

void RegisterCustomApi(Router& router, const CustomApi& api);
// Appends the families to a rendered exposition (before OpenMetrics' "# EOF").
void AppendCustomMetrics(const CustomApi& api, bool openmetrics, std::string& exposition);

}  // namespace stalk
