// Stalk — Celery monitoring server.
#include "store/cost_rollup.h"

#include <cmath>
#include <unordered_set>

#include "common/log.h"

namespace stalk {

std::vector<CostRollupRow> CostRollup::RowsOf(const WriteBatch& batch) {
  std::unordered_set<std::string_view> finished;
  for (const auto& t : batch.transitions) {
    if (t.state == "SUCCESS" || t.state == "FAILURE") finished.insert(t.task_id);
  }
  std::map<Key, CostRollupRow> rows;
  if (finished.empty()) return {};
  for (const TaskRecord& t : batch.tasks) {
    if (!finished.contains(t.id)) continue;
    const double done = t.state == "SUCCESS" ? t.succeeded : t.failed;
    double seconds = 0;
    bool estimated = false;
    if (t.runtime >= 0) {
      seconds = t.runtime;
    } else {
      const double from = t.started > 0 ? t.started : t.received;
      if (from <= 0 || done < from) continue;  // nothing to measure from
      seconds = done - from;
      estimated = true;
    }
    const double at = done > 0 ? done : t.timestamp;
    const double hour = std::floor(at / 3600) * 3600;
    Key key{hour, t.name.value_or(""), t.queue.value_or(""), t.worker.value_or("")};
    auto [it, created] = rows.try_emplace(key);
    CostRollupRow& r = it->second;
    if (created) {
      r.hour = hour;
      r.name = std::get<1>(key);
      r.queue = std::get<2>(key);
      r.worker = std::get<3>(key);
      r.first_at = r.last_at = at;
    }
    r.worker_seconds += seconds;
    ++r.runs;
    r.estimated += estimated ? 1 : 0;
    r.first_at = std::min(r.first_at, at);
    r.last_at = std::max(r.last_at, at);
  }
  std::vector<CostRollupRow> out;
  out.reserve(rows.size());
  for (auto& [k, r] : rows) out.push_back(std::move(r));
  return out;
}

void CostRollup::Observe(Store& store, const WriteBatch& batch) {
  for (auto& r : RowsOf(batch)) {
    auto [it, created] = pending_.try_emplace(Key{r.hour, r.name, r.queue, r.worker}, r);
    if (!created) {
      CostRollupRow& p = it->second;
      p.worker_seconds += r.worker_seconds;
      p.runs += r.runs;
      p.estimated += r.estimated;
      p.first_at = std::min(p.first_at, r.first_at);
      p.last_at = std::max(p.last_at, r.last_at);
    }
  }
  if (!pending_.empty()) {
    std::vector<CostRollupRow> rows;
    rows.reserve(pending_.size());
    for (const auto& [k, r] : pending_) rows.push_back(r);
    if (auto w = store.AddCostRollup(rows); w) {
      pending_.clear();
    } else {
      static RateLimiter log_limit{std::chrono::seconds(60)};
      if (log_limit.Allow()) {
        Logger("store")->warn("cost rollup not written, kept for the next batch ({} rows): {}", rows.size(),
                              w.error());
      }
    }
  }
  const double now = batch.written_at;
  if (retention_age_ > 0 && now >= next_prune_) {
    next_prune_ = now + 3600;
    if (auto d = store.DeleteCostRollupBefore(now - retention_age_); !d) {
      next_prune_ = now + 60;
    }
  }
}

double CostRowShare(const CostRollupRow& row, double since) {
  if (row.first_at >= since) return 1;
  if (row.last_at < since) return 0;
  const double span = row.last_at - row.first_at;
  return span > 0 ? (row.last_at - since) / span : 1;
}

}  // namespace stalk
