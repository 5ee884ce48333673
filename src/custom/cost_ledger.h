// Stalk — Celery monitoring server.
// CostLedger: worker time spent per task name, queue and worker, since Stalk started — the "top
// consumers" view and the stalk_task_worker_seconds_total family. A finished task (succeeded or
// failed) adds its runtime; a task whose worker sent no runtime adds started→finished, or
// received→finished. With --cost_per_worker_hour the seconds become money. Bounded: past 10,000
// (name, queue, worker) keys, new ones are folded into name "other". A StateListener (ingest thread);
// read from HTTP threads under its own mutex.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "state/state_listener.h"

namespace stalk {

struct CostKey {
  std::string name, queue, worker;
  auto operator<=>(const CostKey&) const = default;
};

struct CostEntry {
  double seconds = 0;
  uint64_t tasks = 0;
  uint64_t estimated = 0;  // tasks without a runtime (seconds from their timestamps)
};

class CostLedger : public StateListener {
 public:
  explicit CostLedger(size_t max_keys = 10000) : max_keys_(max_keys) {}

  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;

  std::map<CostKey, CostEntry> Snapshot() const;
  // Totals grouped by "name", "queue" or "worker", largest first, at most `limit`.
  std::vector<std::pair<std::string, CostEntry>> Top(const std::string& group_by, size_t limit) const;
  // The same grouping over any rows (the store's windows).
  static std::vector<std::pair<std::string, CostEntry>> Group(const std::vector<std::pair<CostKey, CostEntry>>& rows,
                                                              const std::string& group_by, size_t limit);

 private:
  size_t max_keys_;
  mutable std::mutex mu_;
  std::map<CostKey, CostEntry> entries_;
};

}  // namespace stalk
