// Stalk — Celery monitoring server.
// The store's schema, shared by both backends: versioned migrations, the column lists, the SQL text
// (generated per dialect: placeholders, multi-row VALUES, SQLite's WITHOUT ROWID), and the mapping
// between records (state/task_record.h) and rows. Backends only move SqlValues in and out.
//
// Tables (version 1; version 2 adds audit_log: control actions, who/what/when/target/result; version 3
// drops unread task indexes; version 4 adds silences (the alert engine's, so they survive a restart),
// cost_hourly (worker time of finished tasks per hour, task name, queue and worker: the cost view's
// 1 h / 24 h / 7 d windows) and cost_counted (task ids already counted there, for instances sharing a
// PostgreSQL history)):
//   schema_version(version, applied_at)      one row per applied migration
//   tasks(id PK, ..., timestamp, updated_at)  every task's latest merged record (Flower's fields, plus
//                                            queue, lost/lost_at, flags); indexes on name, state,
//                                            worker, received, timestamp, parent_id (non-null only)
//   task_transitions(task_id, at, state)     each state a task took, PK (task_id, at, state)
//   workers(hostname PK, ...)                the last record of every worker seen
//   events(at, received_at, type, uuid, hostname, clock, fields)   raw log, only with --store_events
// Nullable columns hold NULL where the API shows null (absent times are NULL, not 0).
// A migration is appended, never edited: a database at version N runs steps N+1.. only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "state/task_record.h"

namespace stalk {

struct EventRecord;
struct TransitionRecord;

enum class SqlDialect : uint8_t { kSqlite, kPostgres };

inline constexpr int kSchemaVersion = 4;

// Statements of migration `version` (1-based) for `dialect`.
std::vector<std::string> MigrationStatements(int version, SqlDialect dialect);
inline constexpr std::string_view kCreateSchemaVersion =
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)";

// A value bound to or read from a statement. Text views must outlive the statement's execution.
struct SqlValue {
  enum class Kind : uint8_t { kNull, kInt, kDouble, kText };
  Kind kind = Kind::kNull;
  int64_t i = 0;
  double d = 0;
  std::string_view s;
  static SqlValue Null() { return {}; }
  static SqlValue Int(int64_t v) { return {Kind::kInt, v, 0, {}}; }
  static SqlValue Double(double v) { return {Kind::kDouble, 0, v, {}}; }
  static SqlValue Text(std::string_view v) { return {Kind::kText, 0, 0, v}; }
};

// Read access to the current result row, implemented by each backend.
class SqlRow {
 public:
  virtual ~SqlRow() = default;
  virtual bool IsNull(int col) const = 0;
  virtual int64_t Int(int col) const = 0;
  virtual double Double(int col) const = 0;
  virtual std::string_view Text(int col) const = 0;
  // The text, or nullopt for NULL; a backend may answer in one call instead of two.
  virtual std::optional<std::string_view> OptText(int col) const {
    if (IsNull(col))
      return std::nullopt;
    return Text(col);
  }
  // The number, 0 for NULL.
  virtual double DoubleOrZero(int col) const { return IsNull(col) ? 0 : Double(col); }
};

// ---- tasks
struct TaskSearch;
// SQL for Store::SearchTasks (placeholders numbered, parameters as text, in order).
std::string TaskSearchSql(SqlDialect dialect, const TaskSearch& q, std::vector<std::string>& params);

inline constexpr size_t kTaskColumns = 33;
// "id, name, ..." in binding order.
std::string TaskColumnList();
// INSERT of `rows` task rows with an upsert on id. `shared`: see StoreConfig::shared.
std::string TaskUpsertSql(SqlDialect dialect, size_t rows, bool shared);
// PostgreSQL's bulk path: the same upsert from a staging table filled with COPY.
std::string TaskUpsertFromSql(std::string_view staging, bool shared);
// Fills kTaskColumns values; views point into `r`.
void TaskValues(const TaskRecord& r, double updated_at, SqlValue* out);
// The columns of TaskColumnList(), from column `first` on. ReadTaskRow overwrites `r` in place,
// reusing its strings' buffers.
TaskRecord TaskFromRow(const SqlRow& row, int first = 0);
void ReadTaskRow(const SqlRow& row, TaskRecord& r, int first = 0);
// Rows per chunk of Store::ForEachRecentTask.
inline constexpr size_t kRestoreChunk = 8192;

// ---- transitions, workers, events
inline constexpr size_t kTransitionColumns = 3;
std::string_view TransitionColumnList();
std::string TransitionInsertSql(SqlDialect dialect, size_t rows);
std::string TransitionInsertFromSql(std::string_view staging);
void TransitionValues(const TransitionRecord& r, SqlValue* out);

inline constexpr size_t kWorkerColumns = 17;
std::string WorkerColumnList();
std::string WorkerUpsertSql(SqlDialect dialect, size_t rows);
std::string WorkerUpsertFromSql(std::string_view staging);
// `loadavg_buf` holds the loadavg text the values point to.
void WorkerValues(const WorkerRecord& r, double updated_at, std::string& loadavg_buf, SqlValue* out);
WorkerRecord WorkerFromRow(const SqlRow& row, int first = 0);

inline constexpr size_t kEventColumns = 7;
std::string_view EventColumnList();
std::string EventInsertSql(SqlDialect dialect, size_t rows);
std::string EventInsertFromSql(std::string_view staging);
void EventValues(const EventRecord& r, SqlValue* out);

// ---- silences, cost_hourly (schema version 4)
inline constexpr std::string_view kSilenceColumns = "id, matchers, starts_at, ends_at, created_by, comment";
inline constexpr std::string_view kCostRollupColumns =
    "hour, name, queue, worker, worker_seconds, runs, estimated, first_at, last_at";
// One row's upsert: adds seconds, runs and estimated runs, widens first_at/last_at.
std::string CostRollupUpsertSql(SqlDialect dialect);

// "?1" (SQLite) or "$1" (PostgreSQL).
std::string Placeholder(SqlDialect dialect, size_t n);

}  // namespace stalk
