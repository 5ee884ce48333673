// Stalk — Celery monitoring server.
#include "store/cost_rollup.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <unordered_set>

#include "common/log.h"

namespace stalk {

std::vector<FinishedTaskCost> CostRollup::TasksOf(const WriteBatch& batch) {
  std::vector<FinishedTaskCost> out;
  std::unordered_set<std::string_view> finished;
  finished.reserve(batch.transitions.size());
  for (const auto& t : batch.transitions) {
    if (t.state == "SUCCESS" || t.state == "FAILURE")
      finished.insert(t.task_id);
  }
  if (finished.empty())
    return out;
  out.reserve(finished.size());
  for (const TaskRecord& t : batch.tasks) {
    if (!finished.contains(t.id))
      continue;
    const double done = t.state == "SUCCESS" ? t.succeeded : t.failed;
    double seconds = 0;
    bool estimated = false;
    if (t.runtime >= 0) {
      seconds = t.runtime;
    } else {
      const double from = t.started > 0 ? t.started : t.received;
      if (from <= 0 || done < from)
        continue;  // nothing to measure from
      seconds = done - from;
      estimated = true;
    }
    const double at = done > 0 ? done : t.timestamp;
    FinishedTaskCost c;
    c.task_id = t.id;
    c.row.hour = std::floor(at / 3600) * 3600;
    c.row.name = t.name.value_or("");
    c.row.queue = t.queue.value_or("");
    c.row.worker = t.worker.value_or("");
    c.row.worker_seconds = seconds;
    c.row.runs = 1;
    c.row.estimated = estimated ? 1 : 0;
    c.row.first_at = c.row.last_at = at;
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<CostRollupRow> AggregateCost(const std::vector<const FinishedTaskCost*>& tasks) {
  std::map<std::tuple<double, std::string_view, std::string_view, std::string_view>, CostRollupRow> rows;
  for (const FinishedTaskCost* t : tasks) {
    const CostRollupRow& c = t->row;
    auto [it, created] = rows.try_emplace({c.hour, c.name, c.queue, c.worker}, c);
    if (created)
      continue;
    CostRollupRow& r = it->second;
    r.worker_seconds += c.worker_seconds;
    r.runs += c.runs;
    r.estimated += c.estimated;
    r.first_at = std::min(r.first_at, c.first_at);
    r.last_at = std::max(r.last_at, c.last_at);
  }
  std::vector<CostRollupRow> out;
  out.reserve(rows.size());
  for (auto& [k, r] : rows)
    out.push_back(std::move(r));
  return out;
}

void CostRollup::Observe(Store& store, const WriteBatch& batch) {
  static RateLimiter log_limit{std::chrono::seconds(60)};
  if (!store.HasRollupTables()) {
    return;  // a test double or a benchmark's null store
  }
  auto more = TasksOf(batch);
  constexpr size_t kMaxPending = 1000000;  // ~100 MiB: a long outage at a high rate
  if (pending_.size() + more.size() > kMaxPending) {
    const size_t drop = std::min(pending_.size(), pending_.size() + more.size() - kMaxPending);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(drop));
    Logger("store")->warn("cost rollup: {} finished tasks dropped while the store fails", drop);
  }
  pending_.insert(pending_.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  if (!pending_.empty()) {
    if (auto w = store.AddCostRollup(pending_); w) {
      pending_.clear();
    } else if (log_limit.Allow()) {
      Logger("store")->warn("cost rollup not written, kept for the next batch ({} tasks): {}", pending_.size(),
                            w.error());
    }
  }
  const double now = batch.written_at;
  if (now >= next_prune_) {
    next_prune_ = now + 3600;
    // cost_counted only guards against a second instance's report, which comes within seconds.
    const double cutoff = retention_age_ > 0 ? now - retention_age_ : 0;
    if (auto d = store.DeleteCostRollupBefore(cutoff, now - 86400); !d) {
      next_prune_ = now + 60;
    }
  }
}

double CostRowShare(const CostRollupRow& row, double since) {
  if (row.first_at >= since)
    return 1;
  if (row.last_at < since)
    return 0;
  const double span = row.last_at - row.first_at;
  return span > 0 ? (row.last_at - since) / span : 1;
}

}  // namespace stalk
