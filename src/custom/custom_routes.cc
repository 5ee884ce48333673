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
  std::string window = "since_start";
  if (auto it = req.query.find("window"); it != req.query.end()) {
    window = it->second;
  }
  double window_seconds = 0;
  if (window == "1h") {
    window_seconds = 3600;
  } else if (window == "24h") {
    window_seconds = 86400;
  } else if (window == "7d") {
    window_seconds = 7 * 86400;
  } else if (window != "since_start") {
    return HttpResponse::Error(400, "window must be since_start, 1h, 24h or 7d");
  }
  std::vector<std::pair<std::string, CostEntry>> rows;
  if (window_seconds > 0) {
    if (!api.stored_cost) {
      return HttpResponse::Error(400, "windows need the history store (--db); only since_start is available");
    }
    auto stored = api.stored_cost(api.now() - window_seconds);
    if (!stored) {
      return HttpResponse::Error(503, "cannot read the cost rollup: " + stored.error());
    }
    rows = CostLedger::Group(*stored, group, limit);
  } else {
    rows = api.cost->Top(group, limit);
  }
  JsonWriter w;
  w.BeginObject();
  w.Field("group", group);
  w.Field("window", window);
  w.Field("source", window_seconds > 0 ? "store" : "memory");
  w.Field("cost_per_worker_hour", api.cost_per_worker_hour);
  w.Key("rows");
  w.BeginArray();
  for (const auto& [key, e] : rows) {
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

HttpResponse Sla(const CustomApi& api, const HttpRequest& req) {
  const std::string only = req.ArgOr("name", "");
  JsonWriter w;
  w.BeginObject();
  w.Key("targets");
  w.Int(static_cast<int64_t>(api.sla ? api.sla->target_count() : 0));
  w.Key("tasks");
  w.BeginArray();
  if (api.sla) {
    for (const auto& r : api.sla->Snapshot()) {
      if (!only.empty() && r.name != only)
        continue;
      w.BeginObject();
      w.Field("name", r.name);
      w.Field("target_seconds", r.target);
      w.Key("runs");
      w.Int(static_cast<int64_t>(r.runs()));
      w.Key("within");
      w.Int(static_cast<int64_t>(r.within));
      w.Key("over");
      w.Int(static_cast<int64_t>(r.over));
      w.Key("failed");
      w.Int(static_cast<int64_t>(r.failed));
      w.Field("ratio", r.ratio());
      w.EndObject();
    }
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

}  // namespace

void RegisterCustomApi(Router& router, const CustomApi& api) {
  router.Get("/api/stalk/sla", [&api](const HttpRequest& req, const std::string&) { return Sla(api, req); });
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
  if (api.sla) {
    api.sla->Append(openmetrics, exposition);
  }
}

}  // namespace stalk
