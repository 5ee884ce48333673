// Stalk — Celery monitoring server.
#include "custom/custom_routes.h"

#include <charconv>
#include <map>

#include "common/json_writer.h"
#include "metrics/exposition_writer.h"

namespace stalk {
namespace {

HttpResponse CustomEventCounts(const CustomApi& api) {
  JsonWriter w;
  w.BeginObject();
  w.Key("types");
  w.BeginObject();
  for (const auto& [type, c] : api.events->Counts()) {
    w.Key(type);
    w.BeginObject();
    w.Field("kind", c.kind);
    w.Key("count");
    w.Int(static_cast<int64_t>(c.count));
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

HttpResponse Cost(const CustomApi& api, const HttpRequest& req) {
  std::string group = "name";
  if (auto it = req.query.find("group"); it != req.query.end()) {
    group = it->second;
  }
  if (group != "name" && group != "queue" && group != "worker") {
    return HttpResponse::Error(400, "group must be name, queue or worker");
  }
  size_t limit = 50;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    const std::string& t = it->second;
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), limit);
    if (ec != std::errc() || end != t.data() + t.size() || limit == 0) {
      return HttpResponse::Error(400, "limit must be a positive integer");
    }
  }
  JsonWriter w;
  w.BeginObject();
  w.Field("group", group);
  w.Field("window", "since start");
  w.Field("cost_per_worker_hour", api.cost_per_worker_hour);
  w.Key("rows");
  w.BeginArray();
  for (const auto& [key, e] : api.cost->Top(group, limit)) {
    w.BeginObject();
    w.Field("key", key);
    w.Field("worker_seconds", e.seconds);
    w.Key("tasks");
    w.Int(static_cast<int64_t>(e.tasks));
    w.Key("estimated_tasks");
    w.Int(static_cast<int64_t>(e.estimated));
    w.Field("cost", e.seconds / 3600 * api.cost_per_worker_hour);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

}  // namespace

void RegisterCustomApi(Router& router, const CustomApi& api) {
  router.Get("/api/stalk/custom-events",
             [&api](const HttpRequest&, const std::string&) { return CustomEventCounts(api); });
  router.Get("/api/stalk/cost", [&api](const HttpRequest& req, const std::string&) { return Cost(api, req); });
}

void AppendCustomMetrics(const CustomApi& api, bool openmetrics, std::string& exposition) {
  ExpositionWriter w(openmetrics, 4096);
  w.Family("stalk_custom_events", MetricType::kCounter,
           "Events of types Celery does not define (task-progress, order-paid...), by type and kind.");
  for (const auto& [type, c] : api.events->Counts()) {
    w.Open();
    w.LabelRaw("type", type);
    w.Label("kind", c.kind);
    w.Close(c.count);
  }
  const auto snapshot = api.cost->Snapshot();
  std::map<std::pair<std::string, std::string>, double> by_task;
  std::map<std::string, double> by_worker;
  for (const auto& [k, e] : snapshot) {
    by_task[{k.name, k.queue}] += e.seconds;
    by_worker[k.worker] += e.seconds;
  }
  w.Family("stalk_task_worker_seconds", MetricType::kCounter,
           "Worker time spent running tasks (runtime; started/received to finish when no runtime), by task and "
           "queue.");
  for (const auto& [k, seconds] : by_task) {
    w.Open();
    w.LabelRaw("task", k.first);
    w.LabelRaw("queue", k.second);
    w.Close(seconds);
  }
  w.Family("stalk_worker_busy_seconds", MetricType::kCounter, "Worker time spent running tasks, by worker.");
  for (const auto& [worker, seconds] : by_worker) {
    w.Open();
    w.LabelRaw("worker", worker);
    w.Close(seconds);
  }
  if (api.cost_per_worker_hour > 0) {
    w.Family("stalk_task_cost", MetricType::kCounter,
             "Cost of the worker time spent on tasks at --cost_per_worker_hour, by task and queue.");
    for (const auto& [k, seconds] : by_task) {
      w.Open();
      w.LabelRaw("task", k.first);
      w.LabelRaw("queue", k.second);
      w.Close(seconds / 3600 * api.cost_per_worker_hour);
    }
  }
  w.AppendTo(exposition);
}

}  // namespace stalk
