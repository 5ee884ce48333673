// Stalk — Celery monitoring server.
#include "alerts/task_outcomes.h"

#include <chrono>

#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {

void TaskOutcomeFeed::OnTaskEvent(const ClusterState& /*state*/, const Task& task, const Event& ev,
                                  TaskState previous) {
  const auto now = [this] {
    return now_ ? now_()
                : std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  };
  if (ev.kind == EventKind::kTaskStarted) {
    // Queue wait at the worker, as stalk_task_queue_wait_seconds: ETA tasks wait by design.
    if (previous != TaskState::kStarted && task.name != kNoId && task.eta.is_null() && task.received > 0 &&
        task.started >= task.received) {
      Push(TaskOutcome{task.name, false, task.started - task.received, now(), true});
    }
    return;
  }
  const bool failed = ev.kind == EventKind::kTaskFailed;
  if (!failed && ev.kind != EventKind::kTaskSucceeded) {
    return;
  }
  // A duplicate of the event that already finished the task is not a second outcome.
  if ((failed && previous == TaskState::kFailure) || (!failed && previous == TaskState::kSuccess)) {
    return;
  }
  if (task.name == kNoId) {
    return;  // never seen task-received: nothing to group by
  }
  Push(TaskOutcome{task.name, failed, task.runtime, now()});
}

void TaskOutcomeFeed::Push(const TaskOutcome& o) {
  std::lock_guard lock(mu_);
  if (buf_.size() >= capacity_) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  buf_.push_back(o);
}

void TaskOutcomeFeed::Drain(std::vector<TaskOutcome>& out) {
  out.clear();
  std::lock_guard lock(mu_);
  out.swap(buf_);
}

void TaskWindows::Add(const std::string& name, const TaskOutcome& o) {
  auto& p = by_name_[name];
  p.recent.push_back(o);
  if (!o.failed && !o.started && o.at > p.last_success) {
    p.last_success = o.at;
  }
}

void TaskWindows::Prune(double now) {
  for (auto& [name, p] : by_name_) {
    while (!p.recent.empty() && p.recent.front().at < now - horizon_) {
      p.recent.pop_front();
    }
  }
}

TaskWindows::Stats TaskWindows::Window(const std::string& name, double now, double window) const {
  Stats s;
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return s;
  }
  for (auto o = it->second.recent.rbegin(); o != it->second.recent.rend() && o->at >= now - window; ++o) {
    if (o->started) {
      s.waits.push_back(o->runtime);
      continue;
    }
    (o->failed ? s.failures : s.successes)++;
    if (o->runtime >= 0) {
      s.runtimes.push_back(o->runtime);
    }
  }
  return s;
}

std::vector<std::string> TaskWindows::Names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, p] : by_name_) {
    out.push_back(name);
  }
  return out;
}

double TaskWindows::LastSuccess(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? 0 : it->second.last_success;
}

}  // namespace stalk
