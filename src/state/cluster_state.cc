// Stalk — Celery monitoring server.
#include "state/cluster_state.h"

#include <algorithm>
#include <cctype>

namespace stalk {
namespace {

TaskState StateForEvent(EventKind k) {
  switch (k) {
    case EventKind::kTaskSent:
      return TaskState::kPending;
    case EventKind::kTaskReceived:
      return TaskState::kReceived;
    case EventKind::kTaskStarted:
      return TaskState::kStarted;
    case EventKind::kTaskSucceeded:
      return TaskState::kSuccess;
    case EventKind::kTaskFailed:
      return TaskState::kFailure;
    case EventKind::kTaskRetried:
      return TaskState::kRetry;
    case EventKind::kTaskRevoked:
      return TaskState::kRevoked;
    case EventKind::kTaskRejected:
      return TaskState::kRejected;
    default:
      return TaskState::kCustom;
  }
}

bool Unfinished(const Task& t) {
  if (t.state == TaskState::kPending) {
    return false;  // not on a worker yet
  }
  if (t.state == TaskState::kRejected) {
    return false;  // rejected: gone from the worker either way (requeued or dropped)
  }
  return !IsFinal(t.state);
}

}  // namespace

ClusterState::ClusterState(StateOptions options) : options_(options) {
  // Sized for the bound up front: a rehash of a million-entry index under the write lock would stall
  // readers for tens of milliseconds. Capped so a huge --max_tasks does not reserve before use.
  by_uuid_.reserve(std::min<size_t>(options_.max_tasks, size_t{2} << 20));
}

// ------------------------------------------------------------------ tasks

Task* ClusterState::GetOrCreateTask(std::string_view id, bool& created) {
  created = false;
  Uuid u;
  const bool is_uuid = ParseUuid(id, u);
  if (is_uuid) {
    if (auto it = by_uuid_.find(u); it != by_uuid_.end()) {
      return &At(SeqOf(it->second));
    }
  } else if (auto it = by_text_.find(std::string(id)); it != by_text_.end()) {
    return &At(it->second);
  }
  if (options_.max_tasks == 0) {
    return nullptr;
  }
  while (task_count() >= options_.max_tasks) {
    EvictOldest();
  }
  const uint64_t seq = end_seq_++;
  if ((seq & (kChunkTasks - 1)) == 0) {
    chunks_.emplace_back(kChunkTasks);
  }
  Task& t = At(seq);
  t.seq = seq;
  if (is_uuid) {
    t.id = u;
    by_uuid_.emplace(u, static_cast<uint32_t>(seq));
  } else {
    t.text_id = true;
    t.MutableTextIds().id.Assign(id);
    by_text_.emplace(std::string(id), seq);
  }
  created = true;
  ++counters_.tasks_created;
  if (!pending_children_.empty()) {
    if (auto it = pending_children_.find(std::string(id)); it != pending_children_.end()) {
      children_[seq] = std::move(it->second);
      pending_children_.erase(it);
    }
  }
  return &t;
}

void ClusterState::EvictOldest() {
  Task& t = At(base_seq_);
  for (StateListener* l : listeners_) {
    l->OnTaskEvicted(*this, t);
  }
  if (t.text_id) {
    by_text_.erase(std::string(t.text_key().view()));
  } else {
    by_uuid_.erase(t.id);
  }
  if (t.worker != kNoId) {
    if (auto w = workers_.find(t.worker); w != workers_.end()) {
      w->second.unfinished.erase(t.seq);
    }
  }
  children_.erase(t.seq);
  t = Task{};  // frees its strings now; the slot's memory goes with its chunk
  ++base_seq_;
  if ((base_seq_ & (kChunkTasks - 1)) == 0) {
    chunks_.pop_front();
    ++first_chunk_;
  }
  ++counters_.tasks_evicted;
}

const Task* ClusterState::FindTask(std::string_view id) const {
  Uuid u;
  if (ParseUuid(id, u)) {
    auto it = by_uuid_.find(u);
    return it == by_uuid_.end() ? nullptr : &At(SeqOf(it->second));
  }
  auto it = by_text_.find(std::string(id));
  return it == by_text_.end() ? nullptr : &At(it->second);
}

const Task* ClusterState::TaskBySeq(uint64_t seq) const { return Live(seq) ? &At(seq) : nullptr; }

void ClusterState::ForEachTaskNewestFirst(const std::function<bool(const Task&)>& fn) const {
  for (uint64_t seq = end_seq_; seq > base_seq_;) {
    if (!fn(At(--seq))) {
      return;
    }
  }
}

std::vector<uint64_t> ClusterState::Children(const Task& t) const {
  auto it = children_.find(t.seq);
  if (it == children_.end()) {
    return {};
  }
  std::vector<uint64_t> out;
  for (uint64_t s : it->second) {
    if (TaskBySeq(s)) {
      out.push_back(s);
    }
  }
  return out;
}

std::string_view ClusterState::StateName(const Task& t) const {
  return t.state == TaskState::kCustom ? strings_.Get(t.custom_state) : TaskStateName(t.state);
}

std::vector<std::string_view> ClusterState::TaskTypes() const {
  std::vector<std::string_view> out;
  out.reserve(task_types_.size());
  for (uint32_t id : task_types_) {
    out.push_back(strings_.Get(id));
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ClusterState::QueueNames() const {
  std::vector<std::string> out;
  for (uint32_t id : queues_) {
    out.emplace_back(strings_.Get(id));
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool ClusterState::SetText(CompactString& dst, const OptStr& src, bool overwrite, size_t limit) {
  if (!src.present || (!overwrite && !dst.is_null())) {
    return false;
  }
  if (src.null) {
    if (overwrite) {
      dst.Reset();
    }
    return false;
  }
  if (dst.Assign(src.value, limit)) {
    ++counters_.fields_truncated;
    return true;
  }
  return false;
}

// Copies the event's task fields. overwrite=false only fills fields still unknown: a late event must
// not replace what a newer one set (Stalk's correction of Celery's copy-all).
void ClusterState::CopyFields(Task& t, const Event& ev, bool overwrite) {
  const size_t lim = options_.max_field_bytes;
  if (ev.name.has_value() && (overwrite || t.name == kNoId)) {
    t.name = strings_.Intern(ev.name.value);
    task_types_.insert(t.name);
  }
  bool cut = SetText(t.args, ev.args, overwrite, lim);
  cut |= SetText(t.kwargs, ev.kwargs, overwrite, lim);
  cut |= SetText(t.result, ev.result, overwrite, lim);
  cut |= SetText(t.exception, ev.exception, overwrite, lim);
  cut |= SetText(t.traceback, ev.traceback, overwrite, options_.max_traceback_bytes);
  cut |= SetText(t.eta, ev.eta, overwrite, lim);
  cut |= SetText(t.expires, ev.expires, overwrite, lim);
  t.truncated |= cut;
  auto set_id = [&](const OptStr& src, uint32_t& dst) {
    if (src.has_value() && (overwrite || dst == kNoId)) {
      dst = strings_.Intern(src.value);
    }
  };
  set_id(ev.exchange, t.exchange);
  set_id(ev.routing_key, t.routing_key);
  set_id(ev.queue, t.queue);
  if (t.queue != kNoId) {
    queues_.insert(t.queue);
  }
  if (ev.retries && (overwrite || t.retries < 0)) {
    t.retries = static_cast<int32_t>(std::clamp<int64_t>(*ev.retries, 0, INT32_MAX));
  }
  if (ev.runtime && (overwrite || t.runtime < 0)) {
    t.runtime = *ev.runtime;
  }
  if (ev.requeue) {
    t.requeue = *ev.requeue;
  }
  auto set_ref = [&](const OptStr& src, bool& has, Uuid& bytes, CompactString Task::TextIds::*text) {
    if (!src.has_value() || (has && !overwrite)) {
      return;
    }
    if (ParseUuid(src.value, bytes)) {
      if (t.text_ids) {
        ((*t.text_ids).*text).Reset();
      }
    } else {
      (t.MutableTextIds().*text).Assign(src.value, lim);
    }
    has = true;
  };
  set_ref(ev.root_id, t.has_root, t.root, &Task::TextIds::root);
  const bool had_parent = t.has_parent;
  set_ref(ev.parent_id, t.has_parent, t.parent, &Task::TextIds::parent);
  if (!had_parent && t.has_parent && ev.parent_id.has_value()) {
    const Task* parent = FindTask(ev.parent_id.value);
    if (parent && parent->seq != t.seq) {  // a retry names the task itself as parent
      children_[parent->seq].push_back(t.seq);
    } else if (!parent && pending_children_.size() < options_.max_tasks) {
      // Child seen before its parent (e.g. Stalk started mid-run): link when the parent appears.
      pending_children_[std::string(ev.parent_id.value)].push_back(t.seq);
    }
  }
}

void ClusterState::TrackUnfinished(Task& t, uint32_t previous_worker) {
  if (previous_worker != kNoId && previous_worker != t.worker) {
    if (auto w = workers_.find(previous_worker); w != workers_.end()) {
      w->second.unfinished.erase(t.seq);
    }
  }
  if (t.worker == kNoId) {
    return;
  }
  auto w = workers_.find(t.worker);
  if (w == workers_.end()) {
    return;
  }
  if (Unfinished(t)) {
    w->second.unfinished.insert(t.seq);
  } else {
    w->second.unfinished.erase(t.seq);
  }
}

void ClusterState::ApplyTask(const Event& ev, double local_received) {
  ++counters_.task_events;
  bool created = false;
  Task* tp = GetOrCreateTask(ev.uuid, created);
  if (!tp) {
    return;
  }
  Task& t = *tp;
  // Celery's receiver shifts timestamps by the sender's utcoffset; Stalk does not: `timestamp` is
  // time.time(), epoch seconds whatever the sender's time zone, and shifting it would misplace the
  // events of workers in other zones by hours.
  const double ts = ev.has_timestamp ? ev.timestamp : local_received;
  const TaskState previous = t.state;
  const uint32_t previous_worker = t.worker;

  switch (ev.kind) {
    case EventKind::kTaskSent:
      t.sent = ts;
      break;
    case EventKind::kTaskReceived:
      t.received = ts;
      break;
    case EventKind::kTaskStarted:
      t.started = ts;
      break;
    case EventKind::kTaskSucceeded:
      t.succeeded = ts;
      break;
    case EventKind::kTaskFailed:
      t.failed = ts;
      break;
    case EventKind::kTaskRetried:
      t.retried = ts;
      break;
    case EventKind::kTaskRevoked:
      t.revoked = ts;
      break;
    case EventKind::kTaskRejected:
      t.rejected = ts;
      break;
    default:
      break;
  }

  if (!ev.hostname.empty()) {
    uint32_t host_id;
    if (ev.kind == EventKind::kTaskSent) {
      host_id = strings_.Intern(ev.hostname);
      t.client = host_id;
    } else {
      Worker& w = GetOrCreateWorker(ev.hostname, host_id);
      w.last_heartbeat = std::max(w.last_heartbeat, local_received);
      ++w.events;
      if (!w.alive && !w.offline_event) {
        w.alive = true;  // a task event is a sign of life too (Celery counts it as a heartbeat)
        w.offline_since = 0;
      }
      t.worker = host_id;
    }
  }

  const TaskState next = StateForEvent(ev.kind);
  bool take_state;
  if (ev.kind == EventKind::kTaskSent) {
    take_state = !t.has_state_event;  // never moves a task backwards
  } else if (!t.has_state_event) {
    take_state = true;
  } else if (next == TaskState::kRejected) {
    take_state = !IsFinal(previous) || previous == TaskState::kRejected;  // §8: rejected beats STARTED
  } else if (next == TaskState::kRetry) {
    // A stale task-retried (it may arrive after the next attempt's task-received, §2.3) never
    // regresses a task: it must be newer than everything the current attempt reported.
    take_state = !IsFinal(previous) && ts >= std::max({t.timestamp, t.received, t.started});
  } else if (previous == TaskState::kRejected && !t.requeue) {
    // Rejected without requeue is final: only another final state may follow (a late started may not).
    take_state = next == TaskState::kSuccess || next == TaskState::kFailure || next == TaskState::kRevoked;
  } else if (next == TaskState::kReceived && ev.retries && *ev.retries > t.retries && !IsFinal(previous)) {
    take_state = true;  // a new attempt after a retry
  } else if (previous == TaskState::kRetry) {
    take_state = true;  // Celery: transitions out of RETRY are always taken
  } else {
    take_state = Precedence(next) <= Precedence(previous);
  }

  if (take_state) {
    CopyFields(t, ev, /*overwrite=*/true);
    t.state = next;
    if (next == TaskState::kCustom) {
      std::string upper(ev.type.substr(5));
      for (char& c : upper) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      t.custom_state = strings_.Intern(upper);
    }
    if (ev.kind != EventKind::kTaskSent) {
      t.has_state_event = true;
    }
    t.timestamp = ts;
    if (ev.has_clock) {
      t.clock = ev.clock;
    }
    if (t.lost && previous != next) {
      t.lost = false;  // the worker spoke about it again: no longer lost
    }
  } else {
    CopyFields(t, ev, /*overwrite=*/false);
    if (t.timestamp == 0) {
      t.timestamp = ts;
    }
  }
  TrackUnfinished(t, previous_worker);
  for (StateListener* l : listeners_) {
    l->OnTaskEvent(*this, t, ev, previous);
  }
}

// ------------------------------------------------------------------ workers

Worker& ClusterState::GetOrCreateWorker(std::string_view hostname, uint32_t& id) {
  id = strings_.Intern(hostname);
  auto [it, inserted] = workers_.try_emplace(id);
  if (inserted) {
    it->second.hostname = std::string(hostname);
    if (workers_.size() > options_.max_workers) {
      // Forget the offline worker seen longest ago; never one that is alive.
      uint32_t victim = kNoId;
      double oldest = 0;
      for (auto& [wid, w] : workers_) {
        if (wid != id && !w.alive && (victim == kNoId || w.last_heartbeat < oldest)) {
          victim = wid, oldest = w.last_heartbeat;
        }
      }
      if (victim != kNoId) {
        workers_.erase(victim);
        ++counters_.workers_evicted;
        it = workers_.find(id);
      }
    }
  }
  return it->second;
}

const Worker* ClusterState::FindWorker(std::string_view hostname) const {
  const uint32_t id = strings_.Find(hostname);
  if (id == kNoId) {
    return nullptr;
  }
  auto it = workers_.find(id);
  return it == workers_.end() ? nullptr : &it->second;
}

bool ClusterState::IsAlive(const Worker& w, double now) const {
  return !w.offline_event && w.last_heartbeat > 0 && now < w.last_heartbeat + w.freq * 2.0;
}

void ClusterState::ApplyWorker(const Event& ev, double local_received) {
  ++counters_.worker_events;
  uint32_t id;
  Worker& w = GetOrCreateWorker(ev.hostname, id);
  ++w.events;
  if (ev.freq && *ev.freq > 0) {
    w.freq = *ev.freq;
  }
  if (ev.active)
    w.active = *ev.active;
  if (ev.processed)
    w.processed = *ev.processed;
  if (ev.loadavg) {
    w.loadavg = *ev.loadavg;
    w.has_loadavg = true;
  }
  if (ev.pid)
    w.pid = ev.pid;
  if (ev.has_clock)
    w.clock = ev.clock;
  w.utcoffset = ev.utcoffset;
  if (ev.sw_ident.has_value())
    w.sw_ident = std::string(ev.sw_ident.value);
  if (ev.sw_ver.has_value())
    w.sw_ver = std::string(ev.sw_ver.value);
  if (ev.sw_sys.has_value())
    w.sw_sys = std::string(ev.sw_sys.value);
  if (ev.kind == EventKind::kWorkerOffline) {
    w.offline_event = true;
    if (w.alive) {
      MarkOffline(id, w, local_received);
    }
  } else {
    w.offline_event = false;
    w.last_heartbeat = std::max(w.last_heartbeat, local_received);
    if (!w.alive) {
      w.alive = true;
      w.offline_since = 0;
    }
  }
  for (StateListener* l : listeners_) {
    l->OnWorkerEvent(*this, w, ev);
  }
}

void ClusterState::MarkOffline(uint32_t /*worker_id*/, Worker& w, double when) {
  w.alive = false;
  w.offline_since = when;
  size_t lost = 0;
  for (uint64_t seq : w.unfinished) {
    if (Live(seq)) {
      Task& t = At(seq);
      if (!t.lost) {
        t.lost = true;
        t.lost_at = when;
        ++lost;
      }
    }
  }
  w.lost_tasks += lost;
  counters_.tasks_lost += lost;
  for (StateListener* l : listeners_) {
    l->OnWorkerOffline(*this, w, lost);
  }
}

void ClusterState::Tick(double now) {
  for (auto& [id, w] : workers_) {
    const bool alive = IsAlive(w, now);
    if (alive && !w.alive) {
      w.alive = true;
      w.offline_since = 0;
    } else if (!alive && w.alive) {
      MarkOffline(id, w, now);
    }
  }
  if (options_.purge_offline_workers > 0) {
    PurgeOfflineWorkers(now);
  }
}

void ClusterState::PurgeOfflineWorkers(double now) {
  std::vector<uint32_t> gone;
  for (auto& [id, w] : workers_) {
    if (!w.alive && w.offline_since > 0 && now - w.offline_since > options_.purge_offline_workers) {
      gone.push_back(id);
    }
  }
  for (uint32_t id : gone) {
    workers_.erase(id);
    ++counters_.workers_evicted;
  }
}

void ClusterState::Apply(const Event& ev, double local_received) {
  if (IsTaskEvent(ev.kind)) {
    ApplyTask(ev, local_received);
  } else if (IsWorkerEvent(ev.kind)) {
    ApplyWorker(ev, local_received);
  } else {
    ++counters_.other_events;
    for (StateListener* l : listeners_) {
      l->OnOtherEvent(*this, ev);
    }
  }
}

size_t ClusterState::ApproxTaskBytes() const {
  size_t n = chunks_.size() * kChunkTasks * sizeof(Task);
  for (uint64_t seq = base_seq_; seq < end_seq_; ++seq) {
    const Task& t = At(seq);
    for (const CompactString* s : {&t.args, &t.kwargs, &t.result, &t.exception, &t.traceback, &t.eta, &t.expires,
                                   &t.text_key(), &t.root_text(), &t.parent_text()}) {
      if (!s->is_null()) {
        n += 4 + s->size();
      }
    }
  }
  return n;
}

}  // namespace stalk
