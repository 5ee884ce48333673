// Stalk — Celery monitoring server.
// CostRollup: the cost view's durable half. Observes each batch the store writer commits (on the
// writer's thread: the ingest path pays nothing) and adds the worker time of the tasks that finished
// in it to the cost_hourly table, per hour, task name, queue and worker. A task counts once: when the
// batch holds its transition to SUCCESS or FAILURE (a duplicate final event is no transition). Its
// worker time is the runtime, or started/received -> finished when the worker sent none (as
// custom/cost_ledger.h counts since start).
//
// Not atomic with the batch: tasks whose rollup fails to write stay pending (up to 1,000,000, then the
// oldest are dropped and logged) and are retried with the next batch, so a database outage delays the
// figures but loses none (unless Stalk stops meanwhile). Instances sharing a PostgreSQL history
// each report the tasks they see; the store counts a task id once (cost_counted).
// With a retention age, hours older than it are deleted once an hour.
//
// Windows (CostWindow): summing whole hours would make "the last hour" anything from 0 to 2 hours of
// work, so each row keeps the first and last finish in its hour, and an hour the window cuts in two
// counts the share of its [first, last] span inside the window — exact when the hour's work lies on
// one side of the cut, linear in between.
#pragma once

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "store/store.h"

namespace stalk {

class CostRollup {
 public:
  explicit CostRollup(double retention_age = 0) : retention_age_(retention_age) {}

  // StoreWriter's batch observer (writer thread).
  void Observe(Store& store, const WriteBatch& batch);
  size_t pending() const { return pending_.size(); }

  // The finished tasks of `batch`, one entry each (exposed for tests).
  static std::vector<FinishedTaskCost> TasksOf(const WriteBatch& batch);

 private:
  double retention_age_;
  std::vector<FinishedTaskCost> pending_;
  double next_prune_ = 0;
};

// Sums tasks into one row per (hour, name, queue, worker), widening first_at/last_at (backends).
std::vector<CostRollupRow> AggregateCost(const std::vector<const FinishedTaskCost*>& tasks);

// The share of a row that falls in [since, ∞): 1 when the hour's finishes are all at or after
// `since`, 0 when all before, else the part of [first_at, last_at] after it.
double CostRowShare(const CostRollupRow& row, double since);

}  // namespace stalk
