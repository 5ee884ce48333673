// Stalk — Celery monitoring server.
// Flower's read API (GET /api/workers, /api/tasks, /api/task/info/<id>, /api/task/types,
// /api/queues/length, /healthcheck) plus Stalk's /api/stalk/stats and /metrics. Handlers read the
// state under the read lock and render JSON with JsonWriter; nothing here blocks ingestion for
// longer than one query. Transport and metrics reach the handlers as functions (ApiContext), so this
// layer depends on neither.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ingest_stats.h"
#include "common/json_writer.h"
#include "common/result.h"
#include "http/router.h"
#include "state/shared_state.h"
#include "state/task_json.h"

namespace stalk {

struct QueueLengthEntry {
  std::string name;
  int64_t messages = 0;
  int64_t consumers = -1;  // RabbitMQ reports it; -1 (Redis): not in the answer
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
  // Remote inspection (control/, wired in cli/serve.cc); empty functions: not available.
  // refresh_workers runs the inspect commands (all workers when the name is empty) for ?refresh=1;
  // worker_inspect returns the cached replies per worker, merged into /api/workers;
  // dynamic_queues returns queue names learned at run time (workers' active_queues).
  std::function<Result<bool>(const std::string& workername)> refresh_workers;
  std::function<std::map<std::string, InspectedFields>()> worker_inspect;
  std::function<std::vector<std::string>()> dynamic_queues;
  // Durable history (store/, wired in cli/store_setup.cc); empty functions: no store.
  // stored_task_json: /api/task/info/<id> of a task no longer in memory (its JSON with "task-id",
  // or nullopt); extra_stats: writes more keys into /api/stalk/stats's object (the "store" block);
  // store_problem: why the store is degraded, or nullopt — /healthcheck stays 200 "OK (store
  // degraded: <why>)" since the live API still works.
  std::function<std::optional<std::string>(std::string_view id)> stored_task_json;
  // Extra fields spliced into /api/task/info's object (custom events, progress); "" for none.
  std::function<std::string(const std::string& id)> task_extra_fields;
  std::function<void(JsonWriter&)> extra_stats;
  std::function<std::optional<std::string>()> store_problem;
  // What start-up is still doing ("restoring history: ..."), or nullopt: /healthcheck stays 200 with it.
  std::function<std::optional<std::string>()> start_up_note;
  // Why the result backend fails (control/), or nullopt: /healthcheck stays 200 with a note.
  std::function<std::optional<std::string>()> result_backend_problem;
  std::function<double()> now;  // wall clock, injectable for tests
  double started_at = 0;
};

void RegisterReadApi(Router& router, const ApiContext& ctx);

// Queue names /api/queues/length reports: seen on task events, plus ctx.extra_queues, sorted, unique.
std::vector<std::string> KnownQueues(const ApiContext& ctx);

}  // namespace stalk
