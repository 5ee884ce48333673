// Stalk — Celery monitoring server.
// What the store tells the outside: its stalk_store_* Prometheus families, its block in
// /api/stalk/stats, its note in /healthcheck, and /api/task/info for tasks no longer in memory. The
// HTTP layer does not depend on store/: cli/serve.cc hands these functions to ApiContext.
//
// Metrics (counters named without _total here; the writer adds it in the 0.0.4 format):
//   stalk_store_up                              gauge    1 while the store is open and writing
//   stalk_store_rows_written_total{table}       counter  rows committed (tasks after coalescing)
//   stalk_store_batches_total                   counter  transactions committed
//   stalk_store_errors_total                    counter  failed opens, writes, retention steps
//   stalk_store_dropped_total                   counter  rows dropped: queue full
//   stalk_store_rejected_total                  counter  rows the database refused as invalid
//   stalk_store_queue_bytes                     gauge    rows waiting or held for a retry
//   stalk_store_last_commit_timestamp_seconds   gauge    wall time of the last commit
//   stalk_store_batch_duration_seconds          gauge    how long the last commit took
//   stalk_store_retention_deleted_total{table}  counter  rows removed by --retention/--max_stored_tasks
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/json_writer.h"
#include "store/store_writer.h"

namespace stalk {

// Appends the stalk_store_* families to `exposition`, before its "# EOF" line in OpenMetrics.
void AppendStoreMetrics(const StoreWriter& writer, bool openmetrics, std::string& exposition);

// Writes `"store": {...}` (a key and an object) into an open JSON object.
void WriteStoreStats(const StoreWriter& writer, JsonWriter& w);

// Why the store is degraded ("cannot open ...", "writing a batch ...: disk is full"), or nullopt.
std::optional<std::string> StoreProblem(const StoreWriter& writer);

// "restoring history: N tasks loaded so far" while start-up restores, else nullopt.
std::optional<std::string> RestoreNote(const StoreWriter& writer);

// /api/task/info/<id> from the store: the task's JSON (with "task-id"), nullopt when not stored or the
// store cannot be read.
std::optional<std::string> StoredTaskJson(const StoreWriter& writer, std::string_view id);

}  // namespace stalk
