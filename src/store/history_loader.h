// Stalk — Celery monitoring server.
// RestoreState: start-up from durable history — the workers, then the most recent `max_tasks` tasks,
// oldest first (Store::ForEachRecentTask: with SQLite the order they were created in, so the API's
// order survives a restart), applied to the live state before ingestion starts. Rows are read on a helper thread while
// this one applies them, in chunks under the write lock, so the HTTP API (already serving) waits at most one chunk and
// the two halves of the work overlap on two cores.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "common/result.h"
#include "state/shared_state.h"
#include "store/store.h"

namespace stalk {

struct RestoreSummary {
  size_t tasks = 0;  // tasks read from the store
  size_t workers = 0;
  double seconds = 0;
  double read_cpu_seconds = 0;   // CPU of the thread reading rows from the store
  double apply_cpu_seconds = 0;  // CPU of the thread applying them to the state
};

// `progress` (optional) grows by each chunk's task count as it is applied.
Result<RestoreSummary> RestoreState(Store& store, SharedState& state, size_t max_tasks,
                                    std::atomic<uint64_t>* progress = nullptr);

}  // namespace stalk
