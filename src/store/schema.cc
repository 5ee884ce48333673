// Stalk — Celery monitoring server.
#include "store/schema.h"

#include <array>
#include <charconv>
#include <cstdio>

#include "store/store.h"

namespace stalk {
namespace {

// Column names in binding order; the upsert's SET list and the readers follow the same order.
constexpr std::array<std::string_view, kTaskColumns> kTaskCols = {
    "id",        "name",    "state",     "worker",  "client",    "queue",     "exchange", "routing_key", "sent",
    "received",  "started", "succeeded", "failed",  "retried",   "revoked",   "rejected", "timestamp",   "runtime",
    "retries",   "clock",   "lost",      "lost_at", "flags",     "args",      "kwargs",   "result",      "exception",
    "traceback", "eta",     "expires",   "root_id", "parent_id", "updated_at"};

constexpr std::array<std::string_view, kWorkerColumns> kWorkerCols = {
    "hostname", "freq",   "last_heartbeat", "offline_since", "utcoffset", "offline_event",
    "pid",      "clock",  "active",         "processed",     "loadavg",   "sw_ident",
    "sw_ver",   "sw_sys", "events",         "lost_tasks",    "updated_at"};

// Task::flags bits (stored; never reuse a bit).
constexpr int64_t kFlagRequeue = 1;
constexpr int64_t kFlagTruncated = 2;
constexpr int64_t kFlagHasStateEvent = 4;

template <size_t N>
std::string Join(const std::array<std::string_view, N>& cols) {
  std::string out;
  for (size_t i = 0; i < N; ++i) {
    if (i)
      out += ", ";
    out += cols[i];
  }
  return out;
}

// "(?1, ?2), (?3, ?4)" for rows x cols.
std::string ValuesList(SqlDialect d, size_t rows, size_t cols) {
  std::string out;
  out.reserve(rows * cols * 7);
  size_t n = 1;
  for (size_t r = 0; r < rows; ++r) {
    out += r ? ", (" : "(";
    for (size_t c = 0; c < cols; ++c) {
      if (c)
        out += ", ";
      out += Placeholder(d, n++);
    }
    out += ')';
  }
  return out;
}

SqlValue TimeOrNull(double v) { return v > 0 ? SqlValue::Double(v) : SqlValue::Null(); }

SqlValue OptText(const std::optional<std::string>& s) { return s ? SqlValue::Text(*s) : SqlValue::Null(); }

void ReadOpt(const SqlRow& row, int col, std::optional<std::string>& out) {
  const std::optional<std::string_view> v = row.OptText(col);
  if (!v) {
    out.reset();
  } else if (out) {
    out->assign(*v);
  } else {
    out.emplace(*v);
  }
}

double ReadTime(const SqlRow& row, int col) { return row.DoubleOrZero(col); }

}  // namespace

std::string Placeholder(SqlDialect dialect, size_t n) {
  return (dialect == SqlDialect::kSqlite ? "?" : "$") + std::to_string(n);
}

std::vector<std::string> MigrationStatements(int version, SqlDialect dialect) {
  const bool sqlite = dialect == SqlDialect::kSqlite;
  switch (version) {
    case 1:
      return {
          "CREATE TABLE tasks ("
          " id TEXT PRIMARY KEY, name TEXT, state TEXT NOT NULL, worker TEXT, client TEXT, queue TEXT,"
          " exchange TEXT, routing_key TEXT,"
          " sent DOUBLE PRECISION, received DOUBLE PRECISION, started DOUBLE PRECISION,"
          " succeeded DOUBLE PRECISION, failed DOUBLE PRECISION, retried DOUBLE PRECISION,"
          " revoked DOUBLE PRECISION, rejected DOUBLE PRECISION, timestamp DOUBLE PRECISION NOT NULL,"
          " runtime DOUBLE PRECISION, retries INTEGER, clock BIGINT NOT NULL DEFAULT 0,"
          " lost INTEGER NOT NULL DEFAULT 0, lost_at DOUBLE PRECISION, flags INTEGER NOT NULL DEFAULT 0,"
          " args TEXT, kwargs TEXT, result TEXT, exception TEXT, traceback TEXT, eta TEXT, expires TEXT,"
          " root_id TEXT, parent_id TEXT, updated_at DOUBLE PRECISION NOT NULL)",
          "CREATE INDEX tasks_timestamp ON tasks (timestamp)",
          "CREATE INDEX tasks_received ON tasks (received)",
          "CREATE INDEX tasks_name ON tasks (name)",
          "CREATE INDEX tasks_state ON tasks (state)",
          "CREATE INDEX tasks_worker ON tasks (worker)",
          "CREATE INDEX tasks_parent ON tasks (parent_id) WHERE parent_id IS NOT NULL",
          std::string("CREATE TABLE task_transitions (task_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,"
                      " state TEXT NOT NULL, PRIMARY KEY (task_id, at, state))") +
              (sqlite ? " WITHOUT ROWID" : ""),
          "CREATE TABLE workers ("
          " hostname TEXT PRIMARY KEY, freq DOUBLE PRECISION, last_heartbeat DOUBLE PRECISION,"
          " offline_since DOUBLE PRECISION, utcoffset DOUBLE PRECISION, offline_event INTEGER,"
          " pid BIGINT, clock BIGINT, active BIGINT, processed BIGINT, loadavg TEXT,"
          " sw_ident TEXT, sw_ver TEXT, sw_sys TEXT, events BIGINT, lost_tasks BIGINT,"
          " updated_at DOUBLE PRECISION NOT NULL)",
          "CREATE TABLE events (at DOUBLE PRECISION NOT NULL, received_at DOUBLE PRECISION, type TEXT NOT NULL,"
          " uuid TEXT, hostname TEXT, clock BIGINT, fields TEXT)",
          "CREATE INDEX events_at ON events (at)",
          "CREATE INDEX events_uuid ON events (uuid) WHERE uuid IS NOT NULL",
      };
    case 2:
      return {
          "CREATE TABLE audit_log (at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, role TEXT, remote TEXT,"
          " action TEXT NOT NULL, target TEXT, params TEXT, result TEXT, message TEXT)",
          "CREATE INDEX audit_log_at ON audit_log (at)",
      };
    case 3:
      // Indexes no query of Stalk's reads: each cost every upsert a B-tree seek and write (the state
      // index one per event). History searches walk tasks_timestamp newest first instead.
      return {
          "DROP INDEX IF EXISTS tasks_received",
          "DROP INDEX IF EXISTS tasks_name",
          "DROP INDEX IF EXISTS tasks_state",
          "DROP INDEX IF EXISTS tasks_worker",
      };
    case 4:
      return {
          // IF NOT EXISTS: development builds of this branch created these tables as "version 3".
          "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL,"
          " starts_at DOUBLE PRECISION NOT NULL, ends_at DOUBLE PRECISION NOT NULL, created_by TEXT, comment TEXT)",
          // first_at/last_at: the earliest and latest finish in the bucket, so a window that cuts an
          // hour in two counts the part of it that falls inside (see store/cost_rollup.h).
          std::string("CREATE TABLE IF NOT EXISTS cost_hourly (hour DOUBLE PRECISION NOT NULL, name TEXT NOT NULL,"
                      " queue TEXT NOT NULL, worker TEXT NOT NULL, worker_seconds DOUBLE PRECISION NOT NULL,"
                      " runs BIGINT NOT NULL, estimated BIGINT NOT NULL, first_at DOUBLE PRECISION NOT NULL,"
                      " last_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (hour, name, queue, worker))") +
              (sqlite ? " WITHOUT ROWID" : ""),
          // Tasks already in cost_hourly, so instances sharing a PostgreSQL history count each once;
          // kept a day (a late duplicate comes within seconds), then pruned.
          std::string("CREATE TABLE IF NOT EXISTS cost_counted (task_id TEXT PRIMARY KEY,"
                      " hour DOUBLE PRECISION NOT NULL)") +
              (sqlite ? " WITHOUT ROWID" : ""),
          "CREATE INDEX IF NOT EXISTS cost_counted_hour ON cost_counted (hour)",
      };
    default:
      return {};
  }
}

std::string CostRollupUpsertSql(SqlDialect dialect) {
  const bool sqlite = dialect == SqlDialect::kSqlite;
  const std::string lo = sqlite ? "MIN" : "LEAST", hi = sqlite ? "MAX" : "GREATEST";
  std::string sql = "INSERT INTO cost_hourly (" + std::string(kCostRollupColumns) + ") VALUES (";
  for (size_t i = 1; i <= 9; ++i)
    sql += (i > 1 ? ", " : "") + Placeholder(dialect, i);
  sql +=
      ") ON CONFLICT (hour, name, queue, worker) DO UPDATE SET"
      " worker_seconds = cost_hourly.worker_seconds + excluded.worker_seconds,"
      " runs = cost_hourly.runs + excluded.runs, estimated = cost_hourly.estimated + excluded.estimated,"
      " first_at = " +
      lo +
      "(cost_hourly.first_at, excluded.first_at),"
      " last_at = " +
      hi + "(cost_hourly.last_at, excluded.last_at)";
  return sql;
}

// ------------------------------------------------------------------ tasks

std::string TaskColumnList() { return Join(kTaskCols); }

namespace {

std::string TaskConflictClause(bool shared) {
  std::string sql = " ON CONFLICT (id) DO UPDATE SET ";
  for (size_t i = 1; i < kTaskColumns; ++i) {
    const std::string col(kTaskCols[i]);
    if (i > 1)
      sql += ", ";
    // Shared history: a lagging instance never clears what another one already knew.
    const bool keep_known = shared && col != "state" && col != "timestamp" && col != "lost" && col != "flags" &&
                            col != "clock" && col != "updated_at";
    sql += keep_known ? col + " = COALESCE(excluded." + col + ", tasks." + col + ")" : col + " = excluded." + col;
  }
  if (shared) {
    sql += " WHERE excluded.timestamp >= tasks.timestamp";
  }
  return sql;
}

std::string WorkerConflictClause() {
  std::string sql = " ON CONFLICT (hostname) DO UPDATE SET ";
  for (size_t i = 1; i < kWorkerColumns; ++i) {
    if (i > 1)
      sql += ", ";
    sql += std::string(kWorkerCols[i]) + " = excluded." + std::string(kWorkerCols[i]);
  }
  // Two instances (or a late flush) never move a worker's record back in time.
  sql += " WHERE excluded.last_heartbeat >= workers.last_heartbeat OR workers.last_heartbeat IS NULL";
  return sql;
}

constexpr std::string_view kTransitionCols = "task_id, at, state";
constexpr std::string_view kEventCols = "at, received_at, type, uuid, hostname, clock, fields";

}  // namespace

std::string TaskUpsertSql(SqlDialect dialect, size_t rows, bool shared) {
  return "INSERT INTO tasks (" + TaskColumnList() + ") VALUES " + ValuesList(dialect, rows, kTaskColumns) +
         TaskConflictClause(shared);
}

std::string TaskUpsertFromSql(std::string_view staging, bool shared) {
  // ORDER BY id: concurrent writers (several instances) lock rows in the same order, never deadlock.
  const std::string cols = TaskColumnList();
  return "INSERT INTO tasks (" + cols + ") SELECT " + cols + " FROM " + std::string(staging) + " ORDER BY id" +
         TaskConflictClause(shared);
}

void TaskValues(const TaskRecord& r, double updated_at, SqlValue* v) {
  v[0] = SqlValue::Text(r.id);
  v[1] = OptText(r.name);
  v[2] = SqlValue::Text(r.state);
  v[3] = OptText(r.worker);
  v[4] = OptText(r.client);
  v[5] = OptText(r.queue);
  v[6] = OptText(r.exchange);
  v[7] = OptText(r.routing_key);
  v[8] = TimeOrNull(r.sent);
  v[9] = TimeOrNull(r.received);
  v[10] = TimeOrNull(r.started);
  v[11] = TimeOrNull(r.succeeded);
  v[12] = TimeOrNull(r.failed);
  v[13] = TimeOrNull(r.retried);
  v[14] = TimeOrNull(r.revoked);
  v[15] = TimeOrNull(r.rejected);
  v[16] = SqlValue::Double(r.timestamp);
  v[17] = r.runtime >= 0 ? SqlValue::Double(r.runtime) : SqlValue::Null();
  v[18] = r.retries >= 0 ? SqlValue::Int(r.retries) : SqlValue::Null();
  v[19] = SqlValue::Int(r.clock);
  v[20] = SqlValue::Int(r.lost ? 1 : 0);
  v[21] = TimeOrNull(r.lost_at);
  v[22] = SqlValue::Int((r.requeue ? kFlagRequeue : 0) | (r.truncated ? kFlagTruncated : 0) |
                        (r.has_state_event ? kFlagHasStateEvent : 0));
  v[23] = OptText(r.args);
  v[24] = OptText(r.kwargs);
  v[25] = OptText(r.result);
  v[26] = OptText(r.exception);
  v[27] = OptText(r.traceback);
  v[28] = OptText(r.eta);
  v[29] = OptText(r.expires);
  v[30] = OptText(r.root_id);
  v[31] = OptText(r.parent_id);
  v[32] = SqlValue::Double(updated_at);
}

std::string TaskSearchSql(SqlDialect dialect, const TaskSearch& q, std::vector<std::string>& params) {
  std::string sql = "SELECT " + TaskColumnList() + " FROM tasks WHERE 1 = 1";
  auto param = [&](std::string v) {
    params.push_back(std::move(v));
    return Placeholder(dialect, params.size());
  };
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  if (!q.state.empty())
    sql += " AND state = " + param(q.state);
  if (!q.name.empty())
    sql += " AND name = " + param(q.name);
  if (!q.worker.empty())
    sql += " AND worker = " + param(q.worker);
  if (q.received_from)
    sql += " AND received >= " + param(number(*q.received_from));
  if (q.received_to)
    sql += " AND received < " + param(number(*q.received_to));
  if (q.before)
    sql += " AND timestamp < " + param(number(*q.before));
  if (!q.text.empty()) {
    // A plain substring (no LIKE wildcards to escape), case-sensitive in both backends.
    const std::string p = param(q.text);
    const char* find = dialect == SqlDialect::kSqlite ? "instr" : "strpos";
    sql += " AND (";
    const char* cols[] = {"args", "kwargs", "result", "exception", "traceback"};
    for (size_t i = 0; i < std::size(cols); ++i) {
      if (i > 0)
        sql += " OR ";
      sql += std::string(find) + "(" + cols[i] + ", " + p + ") > 0";
    }
    sql += ")";
  }
  sql += " ORDER BY timestamp DESC LIMIT " + std::to_string(q.limit);
  return sql;
}

TaskRecord TaskFromRow(const SqlRow& row, int c) {
  TaskRecord r;
  ReadTaskRow(row, r, c);
  return r;
}

void ReadTaskRow(const SqlRow& row, TaskRecord& r, int c) {
  r.id.assign(row.Text(c + 0));
  ReadOpt(row, c + 1, r.name);
  r.state.assign(row.Text(c + 2));
  ReadOpt(row, c + 3, r.worker);
  ReadOpt(row, c + 4, r.client);
  ReadOpt(row, c + 5, r.queue);
  ReadOpt(row, c + 6, r.exchange);
  ReadOpt(row, c + 7, r.routing_key);
  r.sent = ReadTime(row, c + 8);
  r.received = ReadTime(row, c + 9);
  r.started = ReadTime(row, c + 10);
  r.succeeded = ReadTime(row, c + 11);
  r.failed = ReadTime(row, c + 12);
  r.retried = ReadTime(row, c + 13);
  r.revoked = ReadTime(row, c + 14);
  r.rejected = ReadTime(row, c + 15);
  r.timestamp = ReadTime(row, c + 16);
  r.runtime = row.IsNull(c + 17) ? -1 : row.Double(c + 17);
  r.retries = row.IsNull(c + 18) ? -1 : static_cast<int32_t>(row.Int(c + 18));
  r.clock = row.IsNull(c + 19) ? 0 : row.Int(c + 19);
  r.lost = !row.IsNull(c + 20) && row.Int(c + 20) != 0;
  r.lost_at = ReadTime(row, c + 21);
  const int64_t flags = row.IsNull(c + 22) ? 0 : row.Int(c + 22);
  r.requeue = (flags & kFlagRequeue) != 0;
  r.truncated = (flags & kFlagTruncated) != 0;
  r.has_state_event = (flags & kFlagHasStateEvent) != 0;
  ReadOpt(row, c + 23, r.args);
  ReadOpt(row, c + 24, r.kwargs);
  ReadOpt(row, c + 25, r.result);
  ReadOpt(row, c + 26, r.exception);
  ReadOpt(row, c + 27, r.traceback);
  ReadOpt(row, c + 28, r.eta);
  ReadOpt(row, c + 29, r.expires);
  ReadOpt(row, c + 30, r.root_id);
  ReadOpt(row, c + 31, r.parent_id);
}

// ------------------------------------------------------------------ transitions, workers, events

std::string TransitionInsertSql(SqlDialect dialect, size_t rows) {
  return "INSERT INTO task_transitions (" + std::string(kTransitionCols) + ") VALUES " +
         ValuesList(dialect, rows, kTransitionColumns) + " ON CONFLICT DO NOTHING";
}

std::string TransitionInsertFromSql(std::string_view staging) {
  const std::string cols(kTransitionCols);
  return "INSERT INTO task_transitions (" + cols + ") SELECT " + cols + " FROM " + std::string(staging) +
         " ORDER BY task_id ON CONFLICT DO NOTHING";
}

void TransitionValues(const TransitionRecord& r, SqlValue* v) {
  v[0] = SqlValue::Text(r.task_id);
  v[1] = SqlValue::Double(r.at);
  v[2] = SqlValue::Text(r.state);
}

std::string WorkerColumnList() { return Join(kWorkerCols); }

std::string WorkerUpsertSql(SqlDialect dialect, size_t rows) {
  return "INSERT INTO workers (" + WorkerColumnList() + ") VALUES " + ValuesList(dialect, rows, kWorkerColumns) +
         WorkerConflictClause();
}

std::string WorkerUpsertFromSql(std::string_view staging) {
  const std::string cols = WorkerColumnList();
  return "INSERT INTO workers (" + cols + ") SELECT " + cols + " FROM " + std::string(staging) + " ORDER BY hostname" +
         WorkerConflictClause();
}

void WorkerValues(const WorkerRecord& r, double updated_at, std::string& loadavg_buf, SqlValue* v) {
  loadavg_buf.clear();
  if (r.has_loadavg) {
    char buf[96];
    const int n = std::snprintf(buf, sizeof buf, "%.17g,%.17g,%.17g", r.loadavg[0], r.loadavg[1], r.loadavg[2]);
    loadavg_buf.assign(buf, static_cast<size_t>(n > 0 ? n : 0));
  }
  v[0] = SqlValue::Text(r.hostname);
  v[1] = SqlValue::Double(r.freq);
  v[2] = SqlValue::Double(r.last_heartbeat);
  v[3] = TimeOrNull(r.offline_since);
  v[4] = SqlValue::Double(r.utcoffset);
  v[5] = SqlValue::Int(r.offline_event ? 1 : 0);
  v[6] = SqlValue::Int(r.pid);
  v[7] = SqlValue::Int(r.clock);
  v[8] = SqlValue::Int(r.active);
  v[9] = SqlValue::Int(r.processed);
  v[10] = r.has_loadavg ? SqlValue::Text(loadavg_buf) : SqlValue::Null();
  v[11] = SqlValue::Text(r.sw_ident);
  v[12] = SqlValue::Text(r.sw_ver);
  v[13] = SqlValue::Text(r.sw_sys);
  v[14] = SqlValue::Int(static_cast<int64_t>(r.events));
  v[15] = SqlValue::Int(static_cast<int64_t>(r.lost_tasks));
  v[16] = SqlValue::Double(updated_at);
}

WorkerRecord WorkerFromRow(const SqlRow& row, int c) {
  WorkerRecord r;
  auto num = [&](int col) { return row.IsNull(c + col) ? 0 : row.Int(c + col); };
  auto dbl = [&](int col) { return row.IsNull(c + col) ? 0.0 : row.Double(c + col); };
  auto text = [&](int col) { return row.IsNull(c + col) ? std::string() : std::string(row.Text(c + col)); };
  r.hostname = text(0);
  r.freq = row.IsNull(c + 1) ? 60.0 : row.Double(c + 1);
  r.last_heartbeat = dbl(2);
  r.offline_since = dbl(3);
  r.utcoffset = dbl(4);
  r.offline_event = num(5) != 0;
  r.pid = num(6);
  r.clock = num(7);
  r.active = num(8);
  r.processed = num(9);
  if (!row.IsNull(c + 10)) {
    std::string_view s = row.Text(c + 10);
    size_t i = 0;
    for (double& v : r.loadavg) {
      const size_t end = std::min(s.find(',', i), s.size());
      std::from_chars(s.data() + i, s.data() + end, v);
      i = end + 1;
      if (i > s.size())
        break;
    }
    r.has_loadavg = true;
  }
  r.sw_ident = text(11);
  r.sw_ver = text(12);
  r.sw_sys = text(13);
  r.events = static_cast<uint64_t>(num(14));
  r.lost_tasks = static_cast<uint64_t>(num(15));
  return r;
}

std::string EventInsertSql(SqlDialect dialect, size_t rows) {
  return "INSERT INTO events (" + std::string(kEventCols) + ") VALUES " + ValuesList(dialect, rows, kEventColumns);
}

std::string EventInsertFromSql(std::string_view staging) {
  const std::string cols(kEventCols);
  return "INSERT INTO events (" + cols + ") SELECT " + cols + " FROM " + std::string(staging);
}

std::string_view TransitionColumnList() { return kTransitionCols; }
std::string_view EventColumnList() { return kEventCols; }

void EventValues(const EventRecord& r, SqlValue* v) {
  v[0] = SqlValue::Double(r.at);
  v[1] = SqlValue::Double(r.received_at);
  v[2] = SqlValue::Text(r.type);
  v[3] = r.uuid.empty() ? SqlValue::Null() : SqlValue::Text(r.uuid);
  v[4] = r.hostname.empty() ? SqlValue::Null() : SqlValue::Text(r.hostname);
  v[5] = SqlValue::Int(r.clock);
  v[6] = SqlValue::Text(r.fields_json);
}

}  // namespace stalk
