// Stalk — Celery monitoring server.
#include "alerts/task_outcomes.h"

#include <chrono>
#include <cmath>

#include "common/clock.h"
#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {

void TaskOutcomeFeed::OnTaskEvent(const ClusterState& /*state*/, const Task& task, const Event& ev,
                                  TaskState previous) {
  const auto now = [this] { return now_ ? now_() : UnixSeconds(); };
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
  const auto second = static_cast<int64_t>(std::floor(o.at));
  if (p.buckets.empty() || p.buckets.back().second < second) {
    p.buckets.push_back(Bucket{second, 0, 0, {}, {}});
  }
  Bucket& b = p.buckets.back();  // a late outcome joins the newest bucket
  if (o.started) {
    if (b.waits.size() < kSamplesPerSecond)
      b.waits.push_back(static_cast<float>(o.runtime));
    return;
  }
  (o.failed ? b.failures : b.successes)++;
  if (o.runtime >= 0 && b.runtimes.size() < kSamplesPerSecond)
    b.runtimes.push_back(static_cast<float>(o.runtime));
  if (!o.failed && o.at > p.last_success) {
    p.last_success = o.at;
  }
}

void TaskWindows::Prune(double now) {
  const double oldest = std::floor(now - horizon_) - 1;
  for (auto& [name, p] : by_name_) {
    while (!p.buckets.empty() && static_cast<double>(p.buckets.front().second) < oldest) {
      p.buckets.pop_front();
    }
  }
}

TaskWindows::Stats TaskWindows::Window(const std::string& name, double now, double window) const {
  Stats s;
  auto it = by_name_.find(name);
  if (it == by_name_.end()) {
    return s;
  }
  const double from = std::floor(now - window);
  for (auto b = it->second.buckets.rbegin(); b != it->second.buckets.rend() && static_cast<double>(b->second) >= from;
       ++b) {
    s.successes += b->successes;
    s.failures += b->failures;
    s.runtimes.insert(s.runtimes.end(), b->runtimes.begin(), b->runtimes.end());
    s.waits.insert(s.waits.end(), b->waits.begin(), b->waits.end());
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
