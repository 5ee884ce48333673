// Stalk — Celery monitoring server.
// TaskOutcomeFeed: the state listener that tells the alert evaluator which tasks finished. It runs on
// the single ingest (writer) thread under the state's write lock, so OnTaskEvent is O(1) and never
// waits: it appends a 24-byte record to a bounded buffer under a mutex that the evaluator holds only
// to swap the buffer out. Past the bound, outcomes are dropped and counted (the evaluator then
// under-counts; it never slows ingestion). TaskWindows keeps those outcomes per task name over the
// longest rule window, for failure counts/rates, runtime SLAs and the dead-man's switch — in one-second
// buckets (exact counts, at most kSamplesPerSecond runtime and wait samples each), so memory and
// evaluation cost grow with the window's seconds, not with the task rate.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "state/state_listener.h"

namespace stalk {

struct TaskOutcome {
  uint32_t name = 0;  // interned task name (ClusterState::Name)
  bool failed = false;
  double runtime = -1;   // seconds; -1 unknown (started: the queue wait, received -> started)
  double at = 0;         // receiver clock
  bool started = false;  // a task-started (queue wait sample), not a finished task
};

class TaskOutcomeFeed : public StateListener {
 public:
  explicit TaskOutcomeFeed(size_t capacity = 1 << 16) : capacity_(capacity) {}
  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;

  // Moves the buffered outcomes into `out` (cleared first).
  void Drain(std::vector<TaskOutcome>& out);
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // Appends one outcome (what OnTaskEvent does; tests call it directly).
  void Push(const TaskOutcome& o);
  // The clock that stamps outcomes (the engine's; default the wall clock). Set before ingestion.
  void SetClock(std::function<double()> now) { now_ = std::move(now); }

 private:
  size_t capacity_;
  std::function<double()> now_;
  std::mutex mu_;
  std::vector<TaskOutcome> buf_;
  std::atomic<uint64_t> dropped_{0};
};

// Per task name: the finished tasks of the last `horizon` seconds and the last success ever seen.
class TaskWindows {
 public:
  struct Stats {
    uint64_t successes = 0, failures = 0;
    std::vector<double> runtimes;  // of successes and failures with a known runtime
    std::vector<double> waits;     // queue waits (received -> started) of tasks started
  };
  // Runtime / wait samples kept per task name and second; percentiles above this rate are estimates.
  static constexpr size_t kSamplesPerSecond = 64;
  explicit TaskWindows(double horizon) : horizon_(horizon) {}
  void Add(const std::string& name, const TaskOutcome& o);
  // Forgets outcomes older than now - horizon.
  void Prune(double now);
  // The outcomes of `name` newer than now - window.
  Stats Window(const std::string& name, double now, double window) const;
  // Names with outcomes or a success on record.
  std::vector<std::string> Names() const;
  // Receiver time of the last success of `name`; 0 when none was seen.
  double LastSuccess(const std::string& name) const;

 private:
  struct Bucket {
    int64_t second = 0;
    uint32_t successes = 0, failures = 0;
    std::vector<float> runtimes, waits;
  };
  struct PerName {
    std::deque<Bucket> buckets;  // oldest first
    double last_success = 0;
  };
  double horizon_;
  std::unordered_map<std::string, PerName> by_name_;
};

}  // namespace stalk
