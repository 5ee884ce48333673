// Stalk — Celery monitoring server.
// ClusterSummary: counts for the dashboard — tasks by state, tasks by worker and state, workers
// online/offline — computed in one pass over the tracked tasks (caller holds the read lock). A pass
// over 100k tasks takes about a millisecond; LiveFeed (live_feed.h) bounds how often it runs when the
// state is large. Custom states (task-progress etc.) count under their own names in by_state; in
// by_worker they are folded into "CUSTOM" to keep that table small.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/json_writer.h"
#include "state/cluster_state.h"

namespace stalk {

struct ClusterSummary {
  double time = 0;
  uint64_t tasks_total = 0;
  std::array<uint64_t, kTaskStateCount> by_state{};
  std::vector<std::pair<std::string, uint64_t>> custom_states;  // by name, sorted
  // Hostname -> counts by state; only workers that have tasks.
  std::vector<std::pair<std::string, std::array<uint64_t, kTaskStateCount>>> by_worker;
  uint64_t workers_online = 0, workers_offline = 0;
  double scan_seconds = 0;  // how long the pass took (steady clock)
};

// One pass over tasks and workers at `now` (epoch seconds, for worker liveness).
ClusterSummary SummarizeCluster(const ClusterState& st, double now, bool with_workers);

// {"total": n, "by_state": {"PENDING": n, ... every standard state, then custom ones}}
void WriteTaskCounts(const ClusterSummary& s, JsonWriter& w);
// {"online": n, "offline": n}
void WriteWorkerCounts(const ClusterSummary& s, JsonWriter& w);
// {"hostname": {"SUCCESS": n, ...non-zero states only}, ...}
void WriteWorkerTaskCounts(const ClusterSummary& s, JsonWriter& w);

}  // namespace stalk
