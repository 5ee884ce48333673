// Stalk — Celery monitoring server.
#include "http/api_routes.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "common/json_writer.h"
#include "protocol/reject_reason.h"
#include "state/task_json.h"
#include "state/task_query.h"

namespace stalk {
namespace {

std::optional<size_t> ParseSize(const std::string& s) {
  long long v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) {
    return std::nullopt;
  }
  return v < 0 ? 0 : static_cast<size_t>(v);
}

int64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) {
    return -1;
  }
  long pages_total = 0, pages_resident = 0;
  const int n = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
  std::fclose(f);
  return n == 2 ? pages_resident * sysconf(_SC_PAGESIZE) : -1;
}

HttpResponse ListWorkers(const ApiContext& ctx, const HttpRequest& req) {
  const std::string name = req.ArgOr("workername", "");
  std::map<std::string, InspectedFields> inspected;
  if (!req.BoolArg("status")) {
    // Asks the workers (up to the inspect timeout) before taking the state lock.
    if (req.BoolArg("refresh") && ctx.refresh_workers) {
      if (auto r = ctx.refresh_workers(name); !r) {
        return HttpResponse::Error(503, r.error());
      }
    }
    if (ctx.worker_inspect) {
      inspected = ctx.worker_inspect();
    }
  }
  const double now = ctx.now();
  auto st = ctx.state->Read();
  JsonWriter w;
  w.BeginObject();
  if (req.BoolArg("status")) {
    for (const auto& [id, wk] : st->workers()) {
      if (!name.empty() && wk.hostname != name)
        continue;
      w.Key(wk.hostname);
      w.Bool(st->IsAlive(wk, now));
    }
    w.EndObject();
    return HttpResponse::Json(w.Take());
  }
  if (!name.empty() && !st->FindWorker(name) && !inspected.contains(name)) {
    return HttpResponse::Error(404, "Unknown worker '" + name + "'");
  }
  for (const auto& [id, wk] : st->workers()) {
    if (!name.empty() && wk.hostname != name)
      continue;
    w.Key(wk.hostname);
    auto it = inspected.find(wk.hostname);
    WriteWorkerJson(*st, wk, now, w, it == inspected.end() ? nullptr : &it->second);
  }
  // Workers that answered inspection but sent no events (started without -E): Flower's shape only.
  for (const auto& [host, fields] : inspected) {
    if ((!name.empty() && host != name) || st->FindWorker(host))
      continue;
    w.Key(host);
    w.BeginObject();
    w.Field("hostname", host);
    for (const auto& [key, json] : fields) {
      w.Key(key);
      w.Raw(json);
    }
    w.EndObject();
  }
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

HttpResponse ListTasks(const ApiContext& ctx, const HttpRequest& req) {
  TaskQuery q;
  if (auto v = req.Arg("limit"); v && !v->empty()) {
    auto n = ParseSize(*v);
    if (!n)
      return HttpResponse::Error(400, "invalid limit");
    q.limit = *n;
  }
  if (auto v = req.Arg("offset"); v && !v->empty()) {
    auto n = ParseSize(*v);
    if (!n)
      return HttpResponse::Error(400, "invalid offset");
    q.offset = *n;
  }
  q.sort_by = req.ArgOr("sort_by", "");
  q.workername = req.ArgOr("workername", "");
  q.taskname = req.ArgOr("taskname", "");
  q.state = req.ArgOr("state", "");
  q.search = req.ArgOr("search", "");
  for (auto [arg, dst] : {std::pair{"received_start", &q.received_start}, std::pair{"received_end", &q.received_end},
                          std::pair{"started_start", &q.started_start}, std::pair{"started_end", &q.started_end}}) {
    if (auto v = req.Arg(arg); v && !v->empty()) {
      *dst = ParseQueryTime(*v);
      if (!*dst)
        return HttpResponse::Error(400, std::string("invalid ") + arg + ": use YYYY-MM-DD HH:MM");
    }
  }
  auto st = ctx.state->Read();
  auto tasks = RunTaskQuery(*st, q);
  if (!tasks) {
    return HttpResponse::Error(400, tasks.error());
  }
  JsonWriter w;
  w.Reserve(tasks->size() * 900 + 16);
  w.BeginObject();
  for (const Task* t : *tasks) {
    w.Key(t->IdString());
    WriteTaskJson(*st, *t, w);
  }
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

// Adds `fields` ("\"a\":1,\"b\":2") to a JSON object's text.
std::string Splice(std::string object, const std::string& fields) {
  if (fields.empty() || object.size() < 2 || object.back() != '}') {
    return object;
  }
  object.pop_back();
  if (object.back() != '{') {
    object += ',';
  }
  object += fields;
  object += '}';
  return object;
}

HttpResponse TaskInfo(const ApiContext& ctx, const std::string& id) {
  std::optional<std::string> json;
  {
    auto st = ctx.state->Read();
    if (const Task* t = st->FindTask(id)) {
      JsonWriter w;
      WriteTaskJson(*st, *t, w, /*with_task_id=*/true);
      json = w.Take();
    }
  }
  // Not in memory (evicted, or from before a restart beyond --max_tasks): the durable history, read
  // without the state lock held.
  if (!json && ctx.stored_task_json) {
    json = ctx.stored_task_json(id);
  }
  if (!json) {
    return HttpResponse::Error(404, "Unknown task '" + id + "'");
  }
  if (ctx.task_extra_fields) {
    json = Splice(std::move(*json), ctx.task_extra_fields(id));
  }
  return HttpResponse::Json(std::move(*json));
}

HttpResponse TaskTypes(const ApiContext& ctx) {
  auto st = ctx.state->Read();
  JsonWriter w;
  w.BeginObject();
  w.Key("task-types");
  w.BeginArray();
  for (auto name : st->TaskTypes())
    w.String(name);
  w.EndArray();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

HttpResponse QueueLengths(const ApiContext& ctx) {
  if (!ctx.queue_lengths) {
    return HttpResponse::Error(503, "queue lengths are not available for this broker");
  }
  auto lengths = ctx.queue_lengths(KnownQueues(ctx));
  if (!lengths) {
    return HttpResponse::Error(503, "cannot read queue lengths: " + lengths.error());
  }
  JsonWriter w;
  w.BeginObject();
  w.Key("active_queues");
  w.BeginArray();
  for (const auto& q : *lengths) {
    w.BeginObject();
    w.Field("name", q.name);
    w.Key("messages");
    w.Int(q.messages);
    if (q.consumers >= 0) {
      w.Key("consumers");
      w.Int(q.consumers);
    }
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

HttpResponse Healthcheck(const ApiContext& ctx) {
  if (ctx.ingest->broker_connected.load()) {
    if (auto note = ctx.start_up_note ? ctx.start_up_note() : std::nullopt) {
      return HttpResponse::Text("OK (" + *note + ")");
    }
    std::string notes;
    if (const uint8_t level = ctx.ingest->shed.level(); level > 0) {
      notes = level >= 2 ? "ingest falling behind: shedding store_events, custom_events"
                         : "ingest falling behind: shedding store_events";
    }
    if (auto problem = ctx.store_problem ? ctx.store_problem() : std::nullopt) {
      notes += (notes.empty() ? "" : "; ") + ("store degraded: " + *problem);
    }
    if (auto problem = ctx.result_backend_problem ? ctx.result_backend_problem() : std::nullopt) {
      notes += (notes.empty() ? "" : "; ") + ("result backend failing: " + *problem);
    }
    return HttpResponse::Text(notes.empty() ? std::string("OK") : "OK (" + notes + ")");
  }
  const double since = ctx.ingest->last_disconnected_at.load();
  std::string msg = "broker unreachable (" + ctx.broker_redacted + ")";
  if (since > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " for %.0f s", ctx.now() - since);
    msg += buf;
  } else {
    msg += ": never connected";
  }
  return HttpResponse::Text(msg, 503);
}

HttpResponse Stats(const ApiContext& ctx) {
  const IngestStats& in = *ctx.ingest;
  JsonWriter w;
  w.BeginObject();
  w.Field("broker", ctx.broker_redacted);
  w.Key("broker_connected");
  w.Bool(in.broker_connected.load());
  auto num = [&](std::string_view k, uint64_t v) {
    w.Key(k);
    w.Int(static_cast<int64_t>(v));
  };
  num("reconnects", in.reconnects.load());
  num("connection_failures", in.connection_failures.load());
  num("partial_messages_discarded", in.partial_messages_discarded.load());
  num("messages_received", in.messages_received.load());
  num("bytes_received", in.bytes_received.load());
  num("messages_decoded", in.messages_decoded.load());
  num("events_ingested", in.events_ingested.load());
  num("queue_dropped", in.queue_dropped.load());
  num("queue_bytes", in.queue_bytes.load());
  num("queue_high_water_bytes", in.queue_high_water_bytes.load());
  num("shed_level", in.shed.level());
  w.Key("shed");  // by stage, in shedding order (common/load_shed.h)
  w.BeginObject();
  num(ShedStageName(ShedStage::kStoreEvents), in.shed.count(ShedStage::kStoreEvents));
  num(ShedStageName(ShedStage::kCustomEvents), in.shed.count(ShedStage::kCustomEvents));
  num(ShedStageName(ShedStage::kQueueFull), in.queue_dropped.load());
  w.EndObject();
  w.Field("ingest_lag_seconds", in.ingest_lag_seconds.load());
  w.Key("rejected");
  w.BeginObject();
  uint64_t total = 0;
  for (size_t i = 0; i < static_cast<size_t>(RejectReason::kCount); ++i) {
    const uint64_t n = in.rejected[i].load();
    total += n;
    num(RejectReasonName(static_cast<RejectReason>(i)), n);
  }
  w.EndObject();
  num("rejected_total", total);
  {
    auto st = ctx.state->Read();
    const auto& c = st->counters();
    num("tasks_tracked", st->task_count());
    num("workers_tracked", st->workers().size());
    num("task_events", c.task_events);
    num("worker_events", c.worker_events);
    num("other_events", c.other_events);
    num("tasks_evicted", c.tasks_evicted);
    num("tasks_lost", c.tasks_lost);
    num("fields_truncated", c.fields_truncated);
  }
  w.Key("resident_memory_bytes");
  w.Int(ResidentBytes());
  w.Field("uptime_seconds", ctx.now() - ctx.started_at);
  if (ctx.extra_stats) {
    ctx.extra_stats(w);
  }
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

}  // namespace

std::vector<std::string> KnownQueues(const ApiContext& ctx) {
  std::vector<std::string> names;
  {
    auto st = ctx.state->Read();
    names = st->QueueNames();
  }
  names.insert(names.end(), ctx.extra_queues.begin(), ctx.extra_queues.end());
  if (ctx.dynamic_queues) {
    auto learned = ctx.dynamic_queues();
    names.insert(names.end(), learned.begin(), learned.end());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  names.erase(std::remove(names.begin(), names.end(), std::string()), names.end());
  return names;
}

void RegisterReadApi(Router& r, const ApiContext& ctx) {
  r.Get("/api/workers", [&ctx](const HttpRequest& req, const std::string&) { return ListWorkers(ctx, req); });
  r.Get("/api/tasks", [&ctx](const HttpRequest& req, const std::string&) { return ListTasks(ctx, req); });
  r.GetPrefix("/api/task/info/", [&ctx](const HttpRequest&, const std::string& id) { return TaskInfo(ctx, id); });
  r.Get("/api/task/types", [&ctx](const HttpRequest&, const std::string&) { return TaskTypes(ctx); });
  r.Get("/api/queues/length", [&ctx](const HttpRequest&, const std::string&) { return QueueLengths(ctx); });
  r.Get("/healthcheck", [&ctx](const HttpRequest&, const std::string&) { return Healthcheck(ctx); });
  r.Get("/api/stalk/stats", [&ctx](const HttpRequest&, const std::string&) { return Stats(ctx); });
  r.Get("/metrics", [&ctx](const HttpRequest& req, const std::string&) {
    if (!ctx.render_metrics) {
      return HttpResponse::Error(404, "metrics are disabled");
    }
    const bool om = req.Header("accept").find("application/openmetrics-text") != std::string::npos;
    HttpResponse resp = HttpResponse::Text(ctx.render_metrics(om));
    resp.content_type =
        om ? "application/openmetrics-text; version=1.0.0; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8";
    return resp;
  });
}

}  // namespace stalk
