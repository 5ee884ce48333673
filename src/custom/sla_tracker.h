// Stalk — Celery monitoring server.
// SlaTracker: per task name, how many runs finished within a runtime target — the SLA view. Targets
// come from the `sla:` section of the --metric_rules file (reloaded with it on SIGHUP):
//
//   sla:
//     - {task: reports.nightly, target: 30m}
//     - {task: "imports.*", target: 90s}      # globs: the first matching entry wins
//
// Why that file and not the alert rules' task_runtime rule: a target is a definition of a metric,
// like the business metrics there; it must exist without alerting configured, and alert rules (or
// Prometheus, through the exported families) then use the metrics. A run counts when its task
// succeeds (within: runtime <= target, else over) or fails (failed: a failure is never within an SLA);
// runtime is the worker's, or started -> finished when it sent none. Since Stalk started; a reload
// that changes a task's target restarts that task's counts.
//
// Ingest thread: one kind check for every event; for final events a lookup of the interned name in
// a small map under a mutex (no allocation once the name is known).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "state/state_listener.h"

namespace stalk {

struct SlaTarget {
  std::string task;   // exact name or glob
  double target = 0;  // seconds
};

struct SlaRow {
  std::string name;
  double target = 0;
  uint64_t within = 0, over = 0, failed = 0;
  uint64_t runs() const { return within + over + failed; }
  double ratio() const { return runs() ? static_cast<double>(within) / static_cast<double>(runs()) : 1.0; }
};

class SlaTracker : public StateListener {
 public:
  // The `sla:` section of a rules file (absent: no targets). Errors "<source>:<line>:<col>: <what>".
  static Result<std::vector<SlaTarget>> Parse(const std::string& yaml_text, const std::string& source);
  // Loads (or reloads) the file; on error the targets in force stay.
  Result<size_t> Load(const std::string& path);
  void SetTargets(std::vector<SlaTarget> targets);

  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;

  // Task names with a target that ran at least once, by name.
  std::vector<SlaRow> Snapshot() const;
  size_t target_count() const;
  // stalk_task_sla_runs_total{name,outcome}, stalk_task_sla_ratio{name}, stalk_task_sla_target_seconds{name}.
  void Append(bool openmetrics, std::string& exposition) const;

 private:
  mutable std::mutex mu_;
  std::vector<SlaTarget> targets_;
  // Interned task name -> index in rows_, or -1: no target matches that name.
  std::unordered_map<uint32_t, int32_t> by_name_;
  std::vector<SlaRow> rows_;
};

}  // namespace stalk
