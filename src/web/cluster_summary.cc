// Stalk — Celery monitoring server.
#include "web/cluster_summary.h"

#include <algorithm>
#include <chrono>

namespace stalk {

ClusterSummary SummarizeCluster(const ClusterState& st, double now, bool with_workers) {
  const auto started = std::chrono::steady_clock::now();
  ClusterSummary s;
  s.time = now;
  absl::flat_hash_map<uint32_t, uint64_t> custom;  // interned state name -> count
  absl::flat_hash_map<uint32_t, std::array<uint64_t, kTaskStateCount>> per_worker;
  uint32_t last_worker = kNoId;
  std::array<uint64_t, kTaskStateCount>* last_counts = nullptr;
  st.ForEachTaskNewestFirst([&](const Task& t) {
    const auto state = static_cast<size_t>(t.state);
    ++s.by_state[state];
    if (t.state == TaskState::kCustom) {
      ++custom[t.custom_state];
    }
    if (with_workers && t.worker != kNoId) {
      // Neighbouring tasks often ran on the same worker: skip the hash lookup then.
      if (t.worker != last_worker) {
        last_worker = t.worker;
        last_counts = &per_worker[t.worker];
      }
      ++(*last_counts)[state];
    }
    return true;
  });
  s.tasks_total = st.task_count();
  for (const auto& [id, n] : custom) {
    s.custom_states.emplace_back(std::string(st.Name(id)), n);
  }
  std::sort(s.custom_states.begin(), s.custom_states.end());
  for (const auto& [id, counts] : per_worker) {
    s.by_worker.emplace_back(std::string(st.Name(id)), counts);
  }
  std::sort(s.by_worker.begin(), s.by_worker.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [id, wk] : st.workers()) {
    ++(st.IsAlive(wk, now) ? s.workers_online : s.workers_offline);
  }
  s.scan_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return s;
}

void WriteTaskCounts(const ClusterSummary& s, JsonWriter& w) {
  w.BeginObject();
  w.Key("total");
  w.Int(static_cast<int64_t>(s.tasks_total));
  w.Key("by_state");
  w.BeginObject();
  for (size_t i = 0; i < kTaskStateCount; ++i) {
    if (static_cast<TaskState>(i) == TaskState::kCustom) {
      continue;
    }
    w.Key(TaskStateName(static_cast<TaskState>(i)));
    w.Int(static_cast<int64_t>(s.by_state[i]));
  }
  for (const auto& [name, n] : s.custom_states) {
    w.Key(name);
    w.Int(static_cast<int64_t>(n));
  }
  w.EndObject();
  w.EndObject();
}

void WriteWorkerCounts(const ClusterSummary& s, JsonWriter& w) {
  w.BeginObject();
  w.Key("online");
  w.Int(static_cast<int64_t>(s.workers_online));
  w.Key("offline");
  w.Int(static_cast<int64_t>(s.workers_offline));
  w.EndObject();
}

void WriteWorkerTaskCounts(const ClusterSummary& s, JsonWriter& w) {
  w.BeginObject();
  for (const auto& [host, counts] : s.by_worker) {
    w.Key(host);
    w.BeginObject();
    for (size_t i = 0; i < kTaskStateCount; ++i) {
      if (counts[i] == 0) {
        continue;
      }
      const auto state = static_cast<TaskState>(i);
      w.Key(state == TaskState::kCustom ? std::string_view("CUSTOM") : TaskStateName(state));
      w.Int(static_cast<int64_t>(counts[i]));
    }
    w.EndObject();
  }
  w.EndObject();
}

}  // namespace stalk
