// Stalk — Celery monitoring server.
#include "custom/cost_ledger.h"

#include <algorithm>

#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {

void CostLedger::OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) {
  if (ev.kind != EventKind::kTaskSucceeded && ev.kind != EventKind::kTaskFailed) {
    return;
  }
  if (previous == TaskState::kSuccess || previous == TaskState::kFailure) {
    return;  // a duplicate or late final event: counted once
  }
  double seconds = 0;
  bool estimated = false;
  if (ev.runtime && *ev.runtime >= 0) {
    seconds = *ev.runtime;
  } else {
    const double finished = ev.timestamp;
    const double from = task.started > 0 ? task.started : task.received;
    if (from <= 0 || finished < from) {
      return;  // nothing to measure from
    }
    seconds = finished - from;
    estimated = true;
  }
  auto name_of = [&state](uint32_t id) { return id == kNoId ? std::string() : std::string(state.Name(id)); };
  CostKey key{name_of(task.name), name_of(task.queue), name_of(task.worker)};
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    if (entries_.size() >= max_keys_) {
      key = CostKey{"other", "other", "other"};
    }
    it = entries_.try_emplace(key).first;
  }
  it->second.seconds += seconds;
  ++it->second.tasks;
  if (estimated) {
    ++it->second.estimated;
  }
}

std::map<CostKey, CostEntry> CostLedger::Snapshot() const {
  std::lock_guard lock(mu_);
  return entries_;
}

std::vector<std::pair<std::string, CostEntry>> CostLedger::Top(const std::string& group_by, size_t limit) const {
  const auto snapshot = Snapshot();
  return Group(std::vector<std::pair<CostKey, CostEntry>>(snapshot.begin(), snapshot.end()), group_by, limit);
}

std::vector<std::pair<std::string, CostEntry>> CostLedger::Group(const std::vector<std::pair<CostKey, CostEntry>>& rows,
                                                                 const std::string& group_by, size_t limit) {
  std::map<std::string, CostEntry> grouped;
  for (const auto& [k, e] : rows) {
    const std::string& g = group_by == "queue" ? k.queue : group_by == "worker" ? k.worker : k.name;
    CostEntry& out = grouped[g];
    out.seconds += e.seconds;
    out.tasks += e.tasks;
    out.estimated += e.estimated;
  }
  std::vector<std::pair<std::string, CostEntry>> out(grouped.begin(), grouped.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  if (out.size() > limit) {
    out.resize(limit);
  }
  return out;
}

}  // namespace stalk
