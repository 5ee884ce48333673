// Stalk — Celery monitoring server.
// ClusterState::Restore / RestoreWorker: rebuilding live records from durable history (store/) at
// start-up. Kept apart from cluster_state.cc, whose rules are about events; these only copy values,
// keeping the same invariants (indexes, task types, queues, parent/child links, unfinished sets).
#include "state/cluster_state.h"
#include "state/task_record.h"

namespace stalk {

bool ClusterState::Restore(const TaskRecord& r) {
  bool created = false;
  Task* tp = GetOrCreateTask(r.id, created);
  if (!tp || !created) {
    return false;
  }
  Task& t = *tp;
  if (!ParseTaskState(r.state, t.state)) {
    t.state = TaskState::kCustom;
    t.custom_state = strings_.Intern(r.state);
  }
  t.has_state_event = r.has_state_event;
  auto intern = [&](const std::optional<std::string>& s) { return s ? strings_.Intern(*s) : kNoId; };
  t.name = intern(r.name);
  if (t.name != kNoId) {
    task_types_.insert(t.name);
  }
  t.worker = intern(r.worker);
  t.client = intern(r.client);
  t.exchange = intern(r.exchange);
  t.routing_key = intern(r.routing_key);
  t.queue = intern(r.queue);
  if (t.queue != kNoId) {
    queues_.insert(t.queue);
  }
  const size_t lim = options_.max_field_bytes;
  auto text = [&](CompactString& dst, const std::optional<std::string>& src, size_t limit) {
    if (src && dst.Assign(*src, limit)) {
      t.truncated = true;
    }
  };
  text(t.args, r.args, lim);
  text(t.kwargs, r.kwargs, lim);
  text(t.result, r.result, lim);
  text(t.exception, r.exception, lim);
  text(t.traceback, r.traceback, options_.max_traceback_bytes);
  text(t.eta, r.eta, lim);
  text(t.expires, r.expires, lim);
  t.truncated |= r.truncated;
  auto ref = [&](const std::optional<std::string>& src, bool& has, Uuid& bytes, CompactString Task::TextIds::*field) {
    if (!src) {
      return;
    }
    has = true;
    if (!ParseUuid(*src, bytes)) {
      (t.MutableTextIds().*field).Assign(*src, lim);
    }
  };
  ref(r.root_id, t.has_root, t.root, &Task::TextIds::root);
  ref(r.parent_id, t.has_parent, t.parent, &Task::TextIds::parent);
  if (r.parent_id) {
    const Task* parent = FindTask(*r.parent_id);
    if (parent && parent->seq != t.seq) {
      children_[parent->seq].push_back(t.seq);
    } else if (!parent && pending_children_.size() < options_.max_tasks) {
      pending_children_[*r.parent_id].push_back(t.seq);
    }
  }
  t.sent = r.sent, t.received = r.received, t.started = r.started, t.succeeded = r.succeeded;
  t.failed = r.failed, t.retried = r.retried, t.revoked = r.revoked, t.rejected = r.rejected;
  t.timestamp = r.timestamp, t.runtime = r.runtime, t.retries = r.retries, t.clock = r.clock;
  t.lost = r.lost, t.lost_at = r.lost_at, t.requeue = r.requeue;
  TrackUnfinished(t, kNoId);
  return true;
}

void ClusterState::RestoreWorker(const WorkerRecord& r) {
  if (r.hostname.empty()) {
    return;
  }
  uint32_t id;
  Worker& w = GetOrCreateWorker(r.hostname, id);
  if (w.last_heartbeat > r.last_heartbeat) {
    return;  // the live worker is newer than the record
  }
  w.freq = r.freq > 0 ? r.freq : w.freq;
  w.last_heartbeat = r.last_heartbeat;
  w.offline_event = r.offline_event;
  w.offline_since = r.offline_since;
  w.alive = false;  // Tick decides from the heartbeat, as for any worker
  w.pid = r.pid, w.clock = r.clock, w.active = r.active, w.processed = r.processed;
  w.utcoffset = r.utcoffset;
  w.has_loadavg = r.has_loadavg, w.loadavg = r.loadavg;
  w.sw_ident = r.sw_ident, w.sw_ver = r.sw_ver, w.sw_sys = r.sw_sys;
  w.events = r.events, w.lost_tasks = r.lost_tasks;
}

}  // namespace stalk
