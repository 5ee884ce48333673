// Stalk — Celery monitoring server.
#include "state/task_json.h"

namespace stalk {

void WriteTimeOrNull(JsonWriter& w, std::string_view key, double v) {
  w.Key(key);
  if (v > 0) {
    w.Double(v);
  } else {
    w.Null();
  }
}

namespace {

void Text(JsonWriter& w, std::string_view key, const CompactString& s) {
  w.Key(key);
  if (s.is_null()) {
    w.Null();
  } else {
    w.String(s.view());
  }
}

void Interned(JsonWriter& w, const ClusterState& st, std::string_view key, uint32_t id) {
  w.Key(key);
  if (id == kNoId) {
    w.Null();
  } else {
    w.String(st.Name(id));
  }
}

void Ref(JsonWriter& w, std::string_view key, bool has, const Uuid& bytes, const CompactString& text) {
  w.Key(key);
  if (!has) {
    w.Null();
  } else if (!text.is_null()) {
    w.String(text.view());
  } else {
    char buf[36];
    FormatUuid(bytes, buf);
    w.String(std::string_view(buf, 36));
  }
}

}  // namespace

void WriteTaskJson(const ClusterState& st, const Task& t, JsonWriter& w, bool with_task_id) {
  std::string id = t.IdString();
  w.BeginObject();
  w.Field("uuid", id);
  if (with_task_id) {
    w.Field("task-id", id);
  }
  Interned(w, st, "name", t.name);
  w.Field("state", st.StateName(t));
  WriteTimeOrNull(w, "received", t.received);
  WriteTimeOrNull(w, "sent", t.sent);
  WriteTimeOrNull(w, "started", t.started);
  WriteTimeOrNull(w, "rejected", t.rejected);
  WriteTimeOrNull(w, "succeeded", t.succeeded);
  WriteTimeOrNull(w, "failed", t.failed);
  WriteTimeOrNull(w, "retried", t.retried);
  WriteTimeOrNull(w, "revoked", t.revoked);
  Text(w, "args", t.args);
  Text(w, "kwargs", t.kwargs);
  Text(w, "eta", t.eta);
  Text(w, "expires", t.expires);
  w.Key("retries");
  if (t.retries >= 0) {
    w.Int(t.retries);
  } else {
    w.Null();
  }
  Interned(w, st, "worker", t.worker);
  Text(w, "result", t.result);
  Text(w, "exception", t.exception);
  WriteTimeOrNull(w, "timestamp", t.timestamp);
  w.Key("runtime");
  if (t.runtime >= 0) {
    w.Double(t.runtime);
  } else {
    w.Null();
  }
  Text(w, "traceback", t.traceback);
  Interned(w, st, "exchange", t.exchange);
  Interned(w, st, "routing_key", t.routing_key);
  w.Key("clock");
  w.Int(t.clock);
  Interned(w, st, "client", t.client);
  Ref(w, "root", t.has_root, t.root, t.root_text());
  Ref(w, "root_id", t.has_root, t.root, t.root_text());
  Ref(w, "parent", t.has_parent, t.parent, t.parent_text());
  Ref(w, "parent_id", t.has_parent, t.parent, t.parent_text());
  w.Key("children");
  w.BeginArray();
  for (uint64_t seq : st.Children(t)) {
    if (const Task* c = st.TaskBySeq(seq)) {
      w.String(c->IdString());
    }
  }
  w.EndArray();
  Interned(w, st, "queue", t.queue);
  w.Key("lost");
  w.Bool(t.lost);
  WriteTimeOrNull(w, "lost_at", t.lost_at);
  w.EndObject();
}

void WriteWorkerJson(const ClusterState& st, const Worker& wk, double now, JsonWriter& w,
                     const InspectedFields* inspected) {
  bool inspected_active = false;
  if (inspected) {
    for (const auto& [key, json] : *inspected)
      inspected_active |= key == "active";
  }
  w.BeginObject();
  w.Field("hostname", wk.hostname);
  w.Key("status");
  w.Bool(st.IsAlive(wk, now));
  w.Field("freq", wk.freq);
  WriteTimeOrNull(w, "last_heartbeat", wk.last_heartbeat);
  WriteTimeOrNull(w, "offline_since", wk.offline_since);
  w.Key("pid");
  w.Int(wk.pid);
  w.Key("clock");
  w.Int(wk.clock);
  if (!inspected_active) {
    w.Key("active");
    w.Int(wk.active);
  }
  w.Key("processed");
  w.Int(wk.processed);
  w.Key("loadavg");
  if (wk.has_loadavg) {
    w.BeginArray();
    for (double v : wk.loadavg) {
      w.Double(v);
    }
    w.EndArray();
  } else {
    w.Null();
  }
  w.Field("sw_ident", wk.sw_ident);
  w.Field("sw_ver", wk.sw_ver);
  w.Field("sw_sys", wk.sw_sys);
  w.Field("utcoffset", wk.utcoffset);
  w.Key("unfinished_tasks");
  w.Int(static_cast<int64_t>(wk.unfinished.size()));
  w.Key("lost_tasks");
  w.Int(static_cast<int64_t>(wk.lost_tasks));
  w.Key("events");
  w.Int(static_cast<int64_t>(wk.events));
  if (inspected) {
    for (const auto& [key, json] : *inspected) {
      w.Key(key);
      w.Raw(json);
    }
  }
  w.EndObject();
}

}  // namespace stalk
