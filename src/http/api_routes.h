// Stalk — Celery monitoring server.
// Flower's read API (GET /api/workers, /api/tasks, /api/task/info/<id>, /api/task/types,
// /api/queues/length, /healthcheck) plus Stalk's /api/stalk/stats and /metrics. Handlers read the
// state under the read lock and render JSON with JsonWriter; nothing here blocks ingestion for
// longer than one query. Transport and metrics reach the handlers as functions (ApiContext), so this
// layer depends on neither.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/ingest_stats.h"
#include "common/result.h"
#include "http/router.h"
#include "state/shared_state.h"

namespace stalk {

struct QueueLengthEntry {
  std::string name;
  int64_t messages = 0;
};

struct ApiContext {
  SharedState* state = nullptr;
  IngestStats* ingest = nullptr;
  std::string broker_redacted;            // shown by /healthcheck and stats, password hidden
  std::vector<std::string> extra_queues;  // --queues, plus Celery's default queue
  // Live queue lengths from the broker; empty function: not available for this broker.
  std::function<Result<std::vector<QueueLengthEntry>>(const std::vector<std::string>&)> queue_lengths;
  // Prometheus exposition (openmetrics=true for the OpenMetrics format); empty: /metrics is 404.
  std::function<std::string(bool openmetrics)> render_metrics;
  std::function<double()> now;  // wall clock, injectable for tests
  double started_at = 0;
};

void RegisterReadApi(Router& router, const ApiContext& ctx);

// Queue names /api/queues/length reports: seen on task events, plus ctx.extra_queues, sorted, unique.
std::vector<std::string> KnownQueues(const ApiContext& ctx);

}  // namespace stalk
