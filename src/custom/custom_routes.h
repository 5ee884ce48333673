// Stalk — Celery monitoring server.
// HTTP and /metrics faces of custom events and cost:
//   GET /api/stalk/custom-events            counts by custom event type
//   GET /api/stalk/cost?group=name|queue|worker&limit=N&window=since_start|1h|24h|7d
//                                           top consumers of worker time: since start (memory) or over
//                                           the last hour/day/week (the store's hourly rollup)
//   GET /api/stalk/sla                      per task name with a target: runs within/over/failed, ratio
// and the families stalk_custom_events_total{type,kind}, stalk_task_worker_seconds_total{task,queue},
// stalk_worker_busy_seconds_total{worker}, stalk_task_cost_total{task,queue} (with a price per hour).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

#include "custom/cost_ledger.h"
#include "custom/custom_events.h"
#include "custom/sla_tracker.h"
#include "http/router.h"

namespace stalk {

struct CustomApi {
  CustomEvents* events = nullptr;
  CostLedger* cost = nullptr;
  double cost_per_worker_hour = 0;  // --cost_per_worker_hour; 0: seconds only
  // Worker time per (name, queue, worker) of the tasks that finished since `since`, from the store
  // (cli/ wires the hourly rollup); null without a store: only since_start is offered.
  std::function<Result<std::vector<std::pair<CostKey, CostEntry>>>(double since)> stored_cost;
  std::function<double()> now;
  SlaTracker* sla = nullptr;
};

void RegisterCustomApi(Router& router, const CustomApi& api);
// Appends the families to a rendered exposition (before OpenMetrics' "# EOF").
void AppendCustomMetrics(const CustomApi& api, bool openmetrics, std::string& exposition);

}  // namespace stalk
