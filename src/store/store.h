// Stalk — Celery monitoring server.
// Store: durable task history behind one interface, two backends — SqliteStore (embedded default, one
// file, WAL) and PostgresStore (libpq; several Stalk instances share one history). Same schema and
// versioned migrations (schema.h). A Store is a database session, not a service: StoreWriter
// (store_writer.h) owns the thread, the batching and the retries, and calls Write from that thread
// only; reads (LoadTask, ForEachRecentTask, ...) may come from any thread and are serialized inside the
// backend on their own connection, so a slow write never blocks a read behind it (SQLite's WAL lets
// readers run beside the writer).
//
//   auto store = OpenStore(StoreConfig{"stalk.db"});           // or "postgresql://u@h:5432/db"
//   if (!store) { ...store.error()... }
//   WriteBatch b; b.tasks.push_back(record); (*store)->Write(b);
//
// Failures are values (Result): disk full, read-only file, lost connection. After a failed Write the
// caller may call Reconnect() and retry the same batch; a batch is one transaction, so it is either
// all there or not at all.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "state/task_record.h"

#include "common/audit_log.h"

namespace stalk {

// One state change of a task, for its timeline (task_transitions table).
struct TransitionRecord {
  std::string task_id;
  std::string state;
  double at = 0;  // event timestamp
};

// One event as received (events table, --store_events).
struct EventRecord {
  double at = 0;           // event timestamp (receive time when the event had none)
  double received_at = 0;  // receiver clock
  std::string type, uuid, hostname;
  int64_t clock = 0;
  std::string fields_json;  // the event's fields as a JSON object
};

// What one Write commits, in one transaction. Task and worker rows are upserts (the latest record
// wins); transitions and events are appended (duplicates ignored).
struct WriteBatch {
  std::vector<TaskRecord> tasks;  // at most one record per task id
  std::vector<TransitionRecord> transitions;
  std::vector<WorkerRecord> workers;  // at most one record per hostname
  std::vector<EventRecord> events;
  double written_at = 0;  // stored as updated_at
  bool empty() const { return tasks.empty() && transitions.empty() && workers.empty() && events.empty(); }
  size_t rows() const { return tasks.size() + transitions.size() + workers.size() + events.size(); }
};

// A silence of the alert engine (alerts/silences.h), stored so it survives a restart. The store keeps
// the matchers as the JSON object the API shows; alerts/ parses them.
struct SilenceRecord {
  std::string id;
  std::string matchers_json;
  double starts_at = 0, ends_at = 0;
  std::string created_by, comment;
};

// Worker time of the tasks that finished in one hour, per task name, queue and worker (cost_hourly).
struct CostRollupRow {
  double hour = 0;  // start of the hour, epoch seconds (a multiple of 3600)
  std::string name, queue, worker;
  double worker_seconds = 0;
  int64_t runs = 0;
  int64_t estimated = 0;             // runs without a runtime (seconds from their timestamps)
  double first_at = 0, last_at = 0;  // earliest and latest finish in the hour
};

// One finished task's worker time, for the rollup: `row` has runs = 1 and first_at = last_at = its
// finish. The id lets a shared store count each task once however many instances report it.
struct FinishedTaskCost {
  std::string task_id;
  CostRollupRow row;
};

// What one retention step deleted; `more` when a limit was reached (call again).
struct RetentionStep {
  size_t tasks = 0;
  size_t events = 0;
  bool more = false;
};

struct StoreConfig {
  // A file path (SQLite; "file:" URIs allowed) or postgresql:// / postgres:// (PostgreSQL).
  std::string url;
  // Shared history (PostgreSQL): a stored task is replaced only by a record at least as new (by
  // event timestamp) and known text fields are never cleared, so instances that lag behind each other
  // converge instead of overwriting newer facts. SQLite mirrors the one writer exactly.
  bool shared = false;
};

// Filters of Store::SearchTasks (GET /api/stalk/history); every given one must match.
struct TaskSearch {
  std::string state, name, worker;                   // exact; empty: any
  std::string text;                                  // substring of args, kwargs, result, exception or traceback
  std::optional<double> received_from, received_to;  // received in [from, to)
  std::optional<double> before;                      // timestamp < before: the page after one ending there
  size_t limit = 100;
};

class Store {
 public:
  virtual ~Store() = default;

  // "sqlite" or "postgresql".
  virtual std::string_view backend() const = 0;
  // The location with any password hidden, for logs and /api/stalk/stats.
  virtual std::string Describe() const = 0;

  // ---- writer thread
  // Commits the batch in one transaction; on error nothing of it is kept.
  virtual Result<bool> Write(const WriteBatch& batch) = 0;
  // After a failed Write: true when retrying the same rows cannot succeed (the data itself was
  // refused: a constraint, an invalid value, too big), as opposed to the database being unavailable,
  // full or read-only. StoreWriter then splits the batch to isolate and drop the refused rows.
  virtual bool LastWriteErrorIsPermanent() const { return false; }
  // Drops and reopens the write connection (after an error: a read-only reopened file, a restarted
  // PostgreSQL server). Runs migrations again (a no-op when current).
  virtual Result<bool> Reconnect() = 0;
  // Deletes up to `max_rows` tasks with timestamp < cutoff, oldest first, with their transitions, and
  // up to `max_rows` events before the cutoff; when the tasks are done, workers not heard from since
  // the cutoff go too. One transaction: retention proceeds in small steps between write batches.
  virtual Result<RetentionStep> DeleteOlderThan(double cutoff, size_t max_rows) = 0;

  // ---- any thread
  // Timestamp of the n-th newest task (n >= 1); nullopt when fewer are stored.
  virtual Result<std::optional<double>> NthNewestTimestamp(size_t n) = 0;
  // The most recent `limit` tasks (0 = all), oldest first, streamed in chunks: fn gets a vector of
  // records to consume; it may swap in another vector (the backend refills whatever it gets back, so
  // record buffers are reused instead of reallocated). "Recent": SQLite by first write (the order
  // tasks were created in the live state, so a restart keeps the API's order); PostgreSQL, where
  // instances interleave their writes, by timestamp. Returns the records read.
  virtual Result<size_t> ForEachRecentTask(size_t limit, const std::function<void(std::vector<TaskRecord>&)>& fn) = 0;
  virtual Result<std::vector<WorkerRecord>> LoadWorkers() = 0;
  virtual Result<std::optional<TaskRecord>> LoadTask(std::string_view id) = 0;
  // Stored tasks matching `q`, newest first by timestamp (the index Stalk keeps): history beyond memory.
  virtual Result<std::vector<TaskRecord>> SearchTasks(const TaskSearch& q) = 0;
  // Ids of the tasks whose parent is `id`, oldest first.
  virtual Result<std::vector<std::string>> LoadChildren(std::string_view id) = 0;
  virtual Result<std::vector<TransitionRecord>> LoadTransitions(std::string_view id) = 0;
  virtual Result<size_t> CountTasks() = 0;
  // The audit log (control actions), newest first. Appended by the writer thread only.
  virtual Result<bool> AppendAudit(const std::vector<AuditEntry>& entries) = 0;
  virtual Result<std::vector<AuditEntry>> LoadAudit(size_t limit) = 0;
  // Schema version in the database (schema.h kSchemaVersion once migrated).
  virtual Result<int> SchemaVersion() = 0;

  // ---- silences and the cost rollup (schema version 4). Writes: writer thread (StoreWriter::Submit
  // and its batch observer); reads: any thread. Backends without them answer an error.
  // False (the default): the methods below answer an error, and the writer skips the rollup.
  virtual bool HasRollupTables() const { return false; }
  virtual Result<bool> SaveSilence(const SilenceRecord& s);  // insert or replace by id
  virtual Result<bool> DeleteSilence(std::string_view id);
  virtual Result<std::vector<SilenceRecord>> LoadSilences();
  // Adds each finished task to its (hour, name, queue, worker) total, in one transaction. PostgreSQL
  // (shared by instances that all see the same tasks) counts a task id once (cost_counted table).
  virtual Result<bool> AddCostRollup(const std::vector<FinishedTaskCost>& tasks);
  // Rows of the hours that end after `since` (the hour holding `since` included).
  virtual Result<std::vector<CostRollupRow>> LoadCostRollup(double since);
  // Deletes the hours that ended before `cutoff` (retention; 0: none), and the cost_counted ids of
  // hours that ended before `counted_cutoff`.
  virtual Result<bool> DeleteCostRollupBefore(double cutoff, double counted_cutoff);
};

// True when `url` names a PostgreSQL database rather than a SQLite file.
bool IsPostgresUrl(std::string_view url);

// Opens (creating the file or schema when needed) and migrates. Errors say what failed, never a
// password.
Result<std::unique_ptr<Store>> OpenStore(const StoreConfig& config);

// Parses a retention age: "7d", "12h", "30m", "3600s", "3600" (seconds), "0" = keep forever.
Result<double> ParseDuration(std::string_view text);

}  // namespace stalk
