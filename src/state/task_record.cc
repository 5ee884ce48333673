// Stalk — Celery monitoring server.
#include "state/task_record.h"

#include "state/cluster_state.h"
#include "state/task_json.h"

namespace stalk {
namespace {

std::optional<std::string> Text(const CompactString& s) {
  if (s.is_null()) {
    return std::nullopt;
  }
  return std::string(s.view());
}

std::optional<std::string> Interned(const ClusterState& st, uint32_t id) {
  if (id == kNoId) {
    return std::nullopt;
  }
  return std::string(st.Name(id));
}

std::optional<std::string> Ref(bool has, const Uuid& bytes, const CompactString& text) {
  if (!has) {
    return std::nullopt;
  }
  if (!text.is_null()) {
    return std::string(text.view());
  }
  return FormatUuid(bytes);
}

void Opt(JsonWriter& w, std::string_view key, const std::optional<std::string>& s) {
  w.Key(key);
  if (s) {
    w.String(*s);
  } else {
    w.Null();
  }
}

}  // namespace

TaskRecord MakeTaskRecord(const ClusterState& st, const Task& t) {
  TaskRecord r;
  r.id = t.IdString();
  r.state = std::string(st.StateName(t));
  r.name = Interned(st, t.name);
  r.worker = Interned(st, t.worker);
  r.client = Interned(st, t.client);
  r.queue = Interned(st, t.queue);
  r.exchange = Interned(st, t.exchange);
  r.routing_key = Interned(st, t.routing_key);
  r.sent = t.sent, r.received = t.received, r.started = t.started, r.succeeded = t.succeeded;
  r.failed = t.failed, r.retried = t.retried, r.revoked = t.revoked, r.rejected = t.rejected;
  r.timestamp = t.timestamp, r.lost_at = t.lost_at, r.runtime = t.runtime;
  r.retries = t.retries, r.clock = t.clock;
  r.lost = t.lost, r.requeue = t.requeue, r.truncated = t.truncated, r.has_state_event = t.has_state_event;
  r.args = Text(t.args), r.kwargs = Text(t.kwargs), r.result = Text(t.result);
  r.exception = Text(t.exception), r.traceback = Text(t.traceback);
  r.eta = Text(t.eta), r.expires = Text(t.expires);
  r.root_id = Ref(t.has_root, t.root, t.root_text());
  r.parent_id = Ref(t.has_parent, t.parent, t.parent_text());
  return r;
}

WorkerRecord MakeWorkerRecord(const Worker& w) {
  WorkerRecord r;
  r.hostname = w.hostname;
  r.freq = w.freq, r.last_heartbeat = w.last_heartbeat, r.offline_since = w.offline_since;
  r.utcoffset = w.utcoffset, r.offline_event = w.offline_event;
  r.pid = w.pid, r.clock = w.clock, r.active = w.active, r.processed = w.processed;
  r.has_loadavg = w.has_loadavg, r.loadavg = w.loadavg;
  r.sw_ident = w.sw_ident, r.sw_ver = w.sw_ver, r.sw_sys = w.sw_sys;
  r.events = w.events, r.lost_tasks = w.lost_tasks;
  return r;
}

void WriteTaskRecordJson(const TaskRecord& r, const std::vector<std::string>& children, JsonWriter& w,
                         bool with_task_id) {
  w.BeginObject();
  w.Field("uuid", r.id);
  if (with_task_id) {
    w.Field("task-id", r.id);
  }
  Opt(w, "name", r.name);
  w.Field("state", r.state);
  WriteTimeOrNull(w, "received", r.received);
  WriteTimeOrNull(w, "sent", r.sent);
  WriteTimeOrNull(w, "started", r.started);
  WriteTimeOrNull(w, "rejected", r.rejected);
  WriteTimeOrNull(w, "succeeded", r.succeeded);
  WriteTimeOrNull(w, "failed", r.failed);
  WriteTimeOrNull(w, "retried", r.retried);
  WriteTimeOrNull(w, "revoked", r.revoked);
  Opt(w, "args", r.args);
  Opt(w, "kwargs", r.kwargs);
  Opt(w, "eta", r.eta);
  Opt(w, "expires", r.expires);
  w.Key("retries");
  if (r.retries >= 0) {
    w.Int(r.retries);
  } else {
    w.Null();
  }
  Opt(w, "worker", r.worker);
  Opt(w, "result", r.result);
  Opt(w, "exception", r.exception);
  WriteTimeOrNull(w, "timestamp", r.timestamp);
  w.Key("runtime");
  if (r.runtime >= 0) {
    w.Double(r.runtime);
  } else {
    w.Null();
  }
  Opt(w, "traceback", r.traceback);
  Opt(w, "exchange", r.exchange);
  Opt(w, "routing_key", r.routing_key);
  w.Key("clock");
  w.Int(r.clock);
  Opt(w, "client", r.client);
  Opt(w, "root", r.root_id);
  Opt(w, "root_id", r.root_id);
  Opt(w, "parent", r.parent_id);
  Opt(w, "parent_id", r.parent_id);
  w.Key("children");
  w.BeginArray();
  for (const auto& c : children) {
    w.String(c);
  }
  w.EndArray();
  Opt(w, "queue", r.queue);
  w.Key("lost");
  w.Bool(r.lost);
  WriteTimeOrNull(w, "lost_at", r.lost_at);
  w.EndObject();
}

}  // namespace stalk
