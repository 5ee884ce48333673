// Stalk — Celery monitoring server.
#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/thread_name.h"
#include "store/cost_rollup.h"
#include "store/schema.h"

namespace stalk {
namespace {

// ------------------------------------------------------------------ small wrappers

Error Fail(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if ((rc & 0xff) == SQLITE_NOTADB) {
    msg += " (not a SQLite database; a Flower --persistent shelve file? pass another --db)";
  }
  return Error{msg};
}

}  // namespace

// A prepared statement, finalized when it goes. Outside the anonymous namespace because
// SqliteStore::Writer (declared in the header) holds some.
class SqliteStmt {
 public:
  SqliteStmt() = default;
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt() { sqlite3_finalize(s_); }
  Result<bool> Prepare(sqlite3* db, const std::string& sql) {
    sqlite3_finalize(s_);
    s_ = nullptr;
    const int rc =
        sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
    if (rc != SQLITE_OK) {
      return Fail(db, rc, "prepare");
    }
    return true;
  }
  sqlite3_stmt* get() const { return s_; }
  void Bind(const SqlValue* v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const int col = static_cast<int>(i + 1);
      switch (v[i].kind) {
        case SqlValue::Kind::kNull:
          sqlite3_bind_null(s_, col);
          break;
        case SqlValue::Kind::kInt:
          sqlite3_bind_int64(s_, col, v[i].i);
          break;
        case SqlValue::Kind::kDouble:
          sqlite3_bind_double(s_, col, v[i].d);
          break;
        case SqlValue::Kind::kText:
          sqlite3_bind_text(s_, col, v[i].s.data(), static_cast<int>(v[i].s.size()), SQLITE_STATIC);
          break;
      }
    }
  }
  // Runs a statement that returns no rows; resets it for the next use.
  int Run() {
    const int rc = sqlite3_step(s_);
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

namespace {

class Row final : public SqlRow {
 public:
  explicit Row(sqlite3_stmt* s) : s_(s) {}
  bool IsNull(int col) const override { return sqlite3_column_type(s_, col) == SQLITE_NULL; }
  int64_t Int(int col) const override { return sqlite3_column_int64(s_, col); }
  double Double(int col) const override { return sqlite3_column_double(s_, col); }
  std::string_view Text(int col) const override {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));
    return p ? std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string_view();
  }
  std::optional<std::string_view> OptText(int col) const override {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s_, col));  // NULL for SQL NULL
    if (!p)
      return std::nullopt;
    return std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(s_, col)));
  }
  double DoubleOrZero(int col) const override { return sqlite3_column_double(s_, col); }  // NULL reads 0.0

 private:
  sqlite3_stmt* s_;
};

Result<bool> Exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    if ((rc & 0xff) == SQLITE_NOTADB) {
      return Fail(db, rc, sql.substr(0, 40));
    }
    return Error{sql.substr(0, 60) + ": " + msg};
  }
  return true;
}

// Runs `sql` with `args`, calling on_row for each row. Returns SQLITE_DONE or an error.
template <typename OnRow>
Result<bool> Query(sqlite3* db, const std::string& sql, std::initializer_list<SqlValue> args, OnRow on_row) {
  SqliteStmt st;
  if (auto r = st.Prepare(db, sql); !r) {
    return r;
  }
  st.Bind(args.begin(), args.size());
  Row row(st.get());
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    on_row(row);
  }
  if (rc != SQLITE_DONE) {
    return Fail(db, rc, "query");
  }
  return true;
}

Result<sqlite3*> OpenConnection(const std::string& url) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      url.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, nullptr);
  if (rc != SQLITE_OK) {
    Error e = Fail(db, rc, "cannot open " + url);
    sqlite3_close_v2(db);
    return e;
  }
  sqlite3_extended_result_codes(db, 1);
  // Another process (the sqlite3 CLI, a backup) may hold the lock for a moment.
  sqlite3_busy_timeout(db, 5000);
  return db;
}

Result<int> ReadSchemaVersion(sqlite3* db) {
  bool has_table = false;
  auto r = Query(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'", {},
                 [&](const SqlRow&) { has_table = true; });
  if (!r) {
    return Error{r.error()};
  }
  if (!has_table) {
    return 0;
  }
  int version = 0;
  r = Query(db, "SELECT COALESCE(MAX(version), 0) FROM schema_version", {},
            [&](const SqlRow& row) { version = static_cast<int>(row.Int(0)); });
  if (!r) {
    return Error{r.error()};
  }
  return version;
}

// Applies the missing migrations in one IMMEDIATE transaction (another process migrating at the same
// time waits for the lock, then finds nothing to do). A current database is only read, so a
// read-only file opens fine.
Result<bool> Migrate(sqlite3* db) {
  auto v = ReadSchemaVersion(db);
  if (!v) {
    return Error{"reading the schema version: " + v.error()};
  }
  if (*v > kSchemaVersion) {
    return Error{"the database has schema version " + std::to_string(*v) + ", newer than this Stalk's (" +
                 std::to_string(kSchemaVersion) + "): upgrade Stalk or use another --db"};
  }
  if (*v == kSchemaVersion) {
    return true;
  }
  if (auto r = Exec(db, "BEGIN IMMEDIATE"); !r) {
    return r;
  }
  auto fail = [&](const std::string& msg) -> Result<bool> {
    Exec(db, "ROLLBACK");
    return Error{"migrating the schema: " + msg};
  };
  if (auto r = Exec(db, std::string(kCreateSchemaVersion)); !r) {
    return fail(r.error());
  }
  v = ReadSchemaVersion(db);
  if (!v) {
    return fail(v.error());
  }
  for (int version = *v + 1; version <= kSchemaVersion; ++version) {
    for (const auto& sql : MigrationStatements(version, SqlDialect::kSqlite)) {
      if (auto r = Exec(db, sql); !r) {
        return fail(r.error());
      }
    }
    SqliteStmt ins;
    if (auto r = ins.Prepare(db, "INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)"); !r) {
      return fail(r.error());
    }
    const double now = UnixSeconds();
    const SqlValue args[2] = {SqlValue::Int(version), SqlValue::Double(now)};
    ins.Bind(args, 2);
    if (const int rc = ins.Run(); rc != SQLITE_DONE) {
      return fail(sqlite3_errmsg(db));
    }
  }
  if (auto r = Exec(db, "COMMIT"); !r) {
    return fail(r.error());
  }
  return true;
}

}  // namespace

// ------------------------------------------------------------------ the writer connection

struct SqliteStore::Writer {
  // Declared first, so closed after the statements below are finalized.
  struct Connection {
    sqlite3* db = nullptr;
    ~Connection() { sqlite3_close_v2(db); }
  } conn;
  sqlite3* db = nullptr;  // conn.db
  SqliteStmt task, transition, worker, event;
  SqliteStmt retention_select, retention_transitions, retention_task, retention_events, retention_workers;
  std::array<SqlValue, kTaskColumns> values{};
  std::string loadavg;
};

SqliteStore::SqliteStore(StoreConfig config) : config_(std::move(config)) {}

SqliteStore::~SqliteStore() {
  writer_.reset();
  sqlite3_close_v2(reader_);
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const StoreConfig& config) {
  std::unique_ptr<SqliteStore> s(new SqliteStore(config));
  if (auto r = s->OpenWriter(); !r) {
    return Error{r.error()};
  }
  if (auto r = s->OpenReader(); !r) {
    return Error{r.error()};
  }
  return s;
}

Result<bool> SqliteStore::OpenWriter() {
  writer_.reset();
  auto db = OpenConnection(config_.url);
  if (!db) {
    return Error{db.error()};
  }
  auto w = std::make_unique<Writer>();
  w->conn.db = w->db = *db;
  // WAL: readers see the last commit while the writer writes; a kill -9 never loses a commit.
  // NORMAL: fsync at checkpoints, not at every commit (see the header). Checkpoint every 32 MiB of WAL
  // rather than SQLite's 4 MiB: index pages touched by several batches are copied back once (+10-15 %
  // measured, bench/store_bench.cc); the WAL is truncated back to 64 MiB after a checkpoint. 64 MiB
  // page cache for the random-key (uuid) upserts.
  for (const char* pragma :
       {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL", "PRAGMA wal_autocheckpoint = 8192",
        "PRAGMA journal_size_limit = 67108864", "PRAGMA cache_size = -65536", "PRAGMA temp_store = MEMORY"}) {
    if (auto r = Exec(w->db, pragma); !r && r.error().find("not a SQLite") != std::string::npos) {
      return Error{r.error()};
    }
  }
  if (auto r = Migrate(w->db); !r) {
    return Error{config_.url + ": " + r.error()};
  }
  const auto d = SqlDialect::kSqlite;
  for (auto [stmt, sql] :
       {std::pair{&w->task, TaskUpsertSql(d, 1, config_.shared)}, std::pair{&w->transition, TransitionInsertSql(d, 1)},
        std::pair{&w->worker, WorkerUpsertSql(d, 1)}, std::pair{&w->event, EventInsertSql(d, 1)},
        std::pair{&w->retention_select,
                  std::string("SELECT id FROM tasks WHERE timestamp < ?1 ORDER BY timestamp LIMIT ?2")},
        std::pair{&w->retention_transitions, std::string("DELETE FROM task_transitions WHERE task_id = ?1")},
        std::pair{&w->retention_task, std::string("DELETE FROM tasks WHERE id = ?1")},
        std::pair{&w->retention_events, std::string("DELETE FROM events WHERE rowid IN "
                                                    "(SELECT rowid FROM events WHERE at < ?1 ORDER BY at LIMIT ?2)")},
        std::pair{&w->retention_workers, std::string("DELETE FROM workers WHERE last_heartbeat < ?1")}}) {
    if (auto r = stmt->Prepare(w->db, sql); !r) {
      return Error{config_.url + ": " + r.error()};
    }
  }
  writer_ = std::move(w);
  return true;
}

Result<bool> SqliteStore::OpenReader() {
  std::lock_guard lock(read_mu_);
  sqlite3_close_v2(reader_);
  reader_ = nullptr;
  auto db = OpenConnection(config_.url);
  if (!db) {
    return Error{db.error()};
  }
  reader_ = *db;
  Exec(reader_, "PRAGMA query_only = 1");
  Exec(reader_, "PRAGMA cache_size = -16384");
  return true;
}

Result<bool> SqliteStore::Reconnect() { return OpenWriter(); }

// ------------------------------------------------------------------ writes

Result<bool> SqliteStore::Write(const WriteBatch& batch) {
  last_permanent_ = false;
  if (!writer_) {
    return Error{"not connected"};
  }
  if (auto r = Exec(writer_->db, "BEGIN IMMEDIATE"); !r) {
    return r;
  }
  auto r = WriteInTransaction(batch);
  if (r) {
    r = Exec(writer_->db, "COMMIT");
  }
  if (!r) {
    if (!sqlite3_get_autocommit(writer_->db)) {
      Exec(writer_->db, "ROLLBACK");
    }
    return r;
  }
  return true;
}

Result<bool> SqliteStore::WriteInTransaction(const WriteBatch& batch) {
  Writer& w = *writer_;
  auto run = [&](SqliteStmt& st, size_t n, const char* what) -> Result<bool> {
    st.Bind(w.values.data(), n);
    const int rc = st.Run();
    if (rc != SQLITE_DONE) {
      const int primary = rc & 0xff;
      last_permanent_ = primary == SQLITE_CONSTRAINT || primary == SQLITE_TOOBIG || primary == SQLITE_MISMATCH ||
                        primary == SQLITE_RANGE;
      return Fail(w.db, rc, what);
    }
    return true;
  };
  for (const TaskRecord& t : batch.tasks) {
    TaskValues(t, batch.written_at, w.values.data());
    if (auto r = run(w.task, kTaskColumns, "writing a task"); !r)
      return r;
  }
  for (const TransitionRecord& t : batch.transitions) {
    TransitionValues(t, w.values.data());
    if (auto r = run(w.transition, kTransitionColumns, "writing a transition"); !r)
      return r;
  }
  for (const WorkerRecord& wk : batch.workers) {
    WorkerValues(wk, batch.written_at, w.loadavg, w.values.data());
    if (auto r = run(w.worker, kWorkerColumns, "writing a worker"); !r)
      return r;
  }
  for (const EventRecord& e : batch.events) {
    EventValues(e, w.values.data());
    if (auto r = run(w.event, kEventColumns, "writing an event"); !r)
      return r;
  }
  return true;
}

Result<RetentionStep> SqliteStore::DeleteOlderThan(double cutoff, size_t max_rows) {
  if (!writer_) {
    return Error{"not connected"};
  }
  Writer& w = *writer_;
  if (auto r = Exec(w.db, "BEGIN IMMEDIATE"); !r) {
    return Error{r.error()};
  }
  RetentionStep step;
  auto fail = [&](int rc, const char* what) -> Result<RetentionStep> {
    Error e = Fail(w.db, rc, what);
    Exec(w.db, "ROLLBACK");
    return e;
  };
  const SqlValue args[2] = {SqlValue::Double(cutoff), SqlValue::Int(static_cast<int64_t>(max_rows))};
  std::vector<std::string> ids;
  w.retention_select.Bind(args, 2);
  int rc;
  while ((rc = sqlite3_step(w.retention_select.get())) == SQLITE_ROW) {
    ids.emplace_back(Row(w.retention_select.get()).Text(0));
  }
  sqlite3_reset(w.retention_select.get());
  if (rc != SQLITE_DONE) {
    return fail(rc, "retention: selecting tasks");
  }
  for (const auto& id : ids) {
    const SqlValue a = SqlValue::Text(id);
    w.retention_transitions.Bind(&a, 1);
    if ((rc = w.retention_transitions.Run()) != SQLITE_DONE)
      return fail(rc, "retention: deleting transitions");
    w.retention_task.Bind(&a, 1);
    if ((rc = w.retention_task.Run()) != SQLITE_DONE)
      return fail(rc, "retention: deleting a task");
  }
  step.tasks = ids.size();
  w.retention_events.Bind(args, 2);
  if ((rc = w.retention_events.Run()) != SQLITE_DONE)
    return fail(rc, "retention: deleting events");
  step.events = static_cast<size_t>(sqlite3_changes(w.db));
  step.more = step.tasks >= max_rows || step.events >= max_rows;
  if (!step.more) {
    w.retention_workers.Bind(args, 1);
    if ((rc = w.retention_workers.Run()) != SQLITE_DONE)
      return fail(rc, "retention: deleting workers");
  }
  if (auto r = Exec(w.db, "COMMIT"); !r) {
    Exec(w.db, "ROLLBACK");
    return Error{r.error()};
  }
  return step;
}

// ------------------------------------------------------------------ reads

#define STALK_READ_LOCK()          \
  std::lock_guard lock(read_mu_);  \
  if (!reader_) {                  \
    return Error{"not connected"}; \
  }

Result<std::optional<double>> SqliteStore::NthNewestTimestamp(size_t n) {
  STALK_READ_LOCK();
  std::optional<double> out;
  auto r =
      Query(reader_, "SELECT timestamp FROM tasks ORDER BY timestamp DESC LIMIT 1 OFFSET ?1",
            {SqlValue::Int(static_cast<int64_t>(n > 0 ? n - 1 : 0))}, [&](const SqlRow& row) { out = row.Double(0); });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<size_t> SqliteStore::ForEachRecentTask(size_t limit, const std::function<void(std::vector<TaskRecord>&)>& fn) {
  // Start-up reads on connections of their own: the API's reader (reader_) stays free for
  // /api/task/info while history is still loading.
  std::vector<sqlite3*> conns;
  auto close_all = [&conns] {
    for (sqlite3* db : conns)
      sqlite3_close_v2(db);
  };
  const size_t readers = std::thread::hardware_concurrency() >= 2 ? 2 : 1;
  for (size_t i = 0; i < readers; ++i) {
    auto db = OpenConnection(config_.url);
    if (!db) {
      close_all();
      return Error{db.error()};
    }
    Exec(*db, "PRAGMA query_only = 1");
    conns.push_back(*db);
  }
  // rowid is the order of first writes, which the writer makes in the order tasks appeared: reading
  // the table in rowid order is a sequential scan with no index lookups (the 1M-task start-up).
  int64_t first = 0, last = -1;
  auto r = Query(conns[0], "SELECT MAX(rowid) FROM tasks", {}, [&](const SqlRow& row) {
    if (!row.IsNull(0))
      last = row.Int(0);
  });
  if (r && limit > 0) {
    r = Query(conns[0], "SELECT rowid FROM tasks ORDER BY rowid DESC LIMIT 1 OFFSET ?1",
              {SqlValue::Int(static_cast<int64_t>(limit - 1))}, [&](const SqlRow& row) { first = row.Int(0); });
  }
  if (!r) {
    close_all();
    return Error{r.error()};
  }
  // Rowid slices of kRestoreChunk, read in parallel (slice k by reader k % readers) and handed to fn
  // strictly in order: decoding rows costs as much CPU as applying them, so with one reader the
  // applier waits. Each reader holds at most one slice, so memory stays bounded.
  const auto slice = static_cast<int64_t>(kRestoreChunk);
  const int64_t slices = last >= first ? (last - first) / slice + 1 : 0;
  std::mutex mu;
  std::condition_variable turn;
  int64_t next = 0;
  bool failed = false;
  size_t total = 0;
  auto read_slices = [&](sqlite3* db, int64_t parity) -> Result<bool> {
    SqliteStmt st;
    if (auto p = st.Prepare(db, "SELECT " + TaskColumnList() +
                                    " FROM tasks WHERE rowid >= ?1 AND rowid < ?2"
                                    " ORDER BY rowid");
        !p) {
      return p;
    }
    Row row(st.get());
    std::vector<TaskRecord> chunk(kRestoreChunk);
    for (int64_t k = parity; k < slices; k += static_cast<int64_t>(readers)) {
      const SqlValue bounds[2] = {SqlValue::Int(first + k * slice), SqlValue::Int(first + (k + 1) * slice)};
      st.Bind(bounds, 2);
      size_t used = 0;
      int rc;
      while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
        ReadTaskRow(row, chunk[used++]);  // a slice spans kRestoreChunk rowids: never more rows than that
      }
      sqlite3_reset(st.get());
      if (rc != SQLITE_DONE) {
        return Fail(db, rc, "reading stored tasks");
      }
      chunk.resize(used);
      std::unique_lock lock(mu);
      turn.wait(lock, [&] { return next == k || failed; });
      if (failed) {
        return true;  // the other reader's error is the one reported
      }
      if (used > 0) {
        fn(chunk);
      }
      total += used;
      ++next;
      turn.notify_all();
      lock.unlock();
      chunk.resize(kRestoreChunk);
    }
    return true;
  };
  auto run = [&](sqlite3* db, int64_t parity) {
    auto result = read_slices(db, parity);
    if (!result) {
      std::lock_guard lock(mu);
      failed = true;
      turn.notify_all();
    }
    return result;
  };
  Result<bool> helper_result = true;
  std::thread helper;
  if (readers > 1) {
    helper = std::thread([&] {
      NameThisThread("stalk-restore2");
      helper_result = run(conns[1], 1);
    });
  }
  Result<bool> own = run(conns[0], 0);
  if (helper.joinable())
    helper.join();
  close_all();
  if (!own)
    return Error{own.error()};
  if (!helper_result)
    return Error{helper_result.error()};
  return total;
}

Result<std::vector<WorkerRecord>> SqliteStore::LoadWorkers() {
  STALK_READ_LOCK();
  std::vector<WorkerRecord> out;
  auto r = Query(reader_, "SELECT " + WorkerColumnList() + " FROM workers ORDER BY last_heartbeat", {},
                 [&](const SqlRow& row) { out.push_back(WorkerFromRow(row)); });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<std::optional<TaskRecord>> SqliteStore::LoadTask(std::string_view id) {
  STALK_READ_LOCK();
  std::optional<TaskRecord> out;
  auto r = Query(reader_, "SELECT " + TaskColumnList() + " FROM tasks WHERE id = ?1", {SqlValue::Text(id)},
                 [&](const SqlRow& row) { out = TaskFromRow(row); });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<std::vector<TaskRecord>> SqliteStore::SearchTasks(const TaskSearch& q) {
  STALK_READ_LOCK();
  std::vector<std::string> params;
  const std::string sql = TaskSearchSql(SqlDialect::kSqlite, q, params);
  SqliteStmt st;
  if (auto r = st.Prepare(reader_, sql); !r)
    return Error{r.error()};
  std::vector<SqlValue> values;
  for (const auto& p : params)
    values.push_back(SqlValue::Text(p));
  st.Bind(values.data(), values.size());
  std::vector<TaskRecord> out;
  Row row(st.get());
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    out.push_back(TaskFromRow(row));
  }
  if (rc != SQLITE_DONE)
    return Fail(reader_, rc, "searching stored tasks");
  return out;
}

Result<std::vector<std::string>> SqliteStore::LoadChildren(std::string_view id) {
  STALK_READ_LOCK();
  std::vector<std::string> out;
  auto r = Query(reader_, "SELECT id FROM tasks WHERE parent_id = ?1 ORDER BY timestamp", {SqlValue::Text(id)},
                 [&](const SqlRow& row) { out.emplace_back(row.Text(0)); });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<std::vector<TransitionRecord>> SqliteStore::LoadTransitions(std::string_view id) {
  STALK_READ_LOCK();
  std::vector<TransitionRecord> out;
  auto r = Query(reader_, "SELECT task_id, at, state FROM task_transitions WHERE task_id = ?1 ORDER BY at",
                 {SqlValue::Text(id)}, [&](const SqlRow& row) {
                   out.push_back({std::string(row.Text(0)), std::string(row.Text(2)), row.Double(1)});
                 });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<size_t> SqliteStore::CountTasks() {
  STALK_READ_LOCK();
  size_t n = 0;
  auto r =
      Query(reader_, "SELECT COUNT(*) FROM tasks", {}, [&](const SqlRow& row) { n = static_cast<size_t>(row.Int(0)); });
  if (!r)
    return Error{r.error()};
  return n;
}

Result<std::vector<AuditEntry>> SqliteStore::LoadAudit(size_t limit) {
  STALK_READ_LOCK();
  std::vector<AuditEntry> out;
  auto r =
      Query(reader_,
            "SELECT at, actor, role, remote, action, target, params, result, message FROM audit_log"
            " ORDER BY at DESC, rowid DESC LIMIT ?1",
            {SqlValue::Int(static_cast<int64_t>(limit))}, [&](const SqlRow& row) {
              out.push_back(AuditEntry{row.Double(0), std::string(row.Text(1)), std::string(row.Text(2)),
                                       std::string(row.Text(3)), std::string(row.Text(4)), std::string(row.Text(5)),
                                       std::string(row.Text(6)), std::string(row.Text(7)), std::string(row.Text(8))});
            });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<int> SqliteStore::SchemaVersion() {
  STALK_READ_LOCK();
  return ReadSchemaVersion(reader_);
}

#undef STALK_READ_LOCK

Result<bool> SqliteStore::AppendAudit(const std::vector<AuditEntry>& entries) {
  if (!writer_)
    return Error{"store is not open"};
  sqlite3* db = writer_->db;
  if (auto r = Exec(db, "BEGIN IMMEDIATE"); !r)
    return r;
  for (const AuditEntry& e : entries) {
    auto r = Query(db,
                   "INSERT INTO audit_log (at, actor, role, remote, action, target, params, result, message)"
                   " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                   {SqlValue::Double(e.at), SqlValue::Text(e.actor), SqlValue::Text(e.role), SqlValue::Text(e.remote),
                    SqlValue::Text(e.action), SqlValue::Text(e.target), SqlValue::Text(e.params),
                    SqlValue::Text(e.result), SqlValue::Text(e.message)},
                   [](const SqlRow&) {});
    if (!r) {
      (void)Exec(db, "ROLLBACK");
      return r;
    }
  }
  return Exec(db, "COMMIT");
}

// ------------------------------------------------------------------ silences, cost rollup (schema 4)

Result<bool> SqliteStore::SaveSilence(const SilenceRecord& s) {
  if (!writer_)
    return Error{"store is not open"};
  return Query(writer_->db,
               "INSERT OR REPLACE INTO silences (" + std::string(kSilenceColumns) + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
               {SqlValue::Text(s.id), SqlValue::Text(s.matchers_json), SqlValue::Double(s.starts_at),
                SqlValue::Double(s.ends_at), SqlValue::Text(s.created_by), SqlValue::Text(s.comment)},
               [](const SqlRow&) {});
}

Result<bool> SqliteStore::DeleteSilence(std::string_view id) {
  if (!writer_)
    return Error{"store is not open"};
  return Query(writer_->db, "DELETE FROM silences WHERE id = ?1", {SqlValue::Text(id)}, [](const SqlRow&) {});
}

Result<std::vector<SilenceRecord>> SqliteStore::LoadSilences() {
  std::lock_guard lock(read_mu_);
  if (!reader_)
    return Error{"not connected"};
  std::vector<SilenceRecord> out;
  auto r = Query(reader_, "SELECT " + std::string(kSilenceColumns) + " FROM silences ORDER BY starts_at, id", {},
                 [&](const SqlRow& row) {
                   out.push_back(SilenceRecord{std::string(row.Text(0)), std::string(row.Text(1)), row.Double(2),
                                               row.Double(3), std::string(row.Text(4)), std::string(row.Text(5))});
                 });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<bool> SqliteStore::AddCostRollup(const std::vector<FinishedTaskCost>& tasks) {
  if (!writer_)
    return Error{"store is not open"};
  // One writer: every task reported here is new (a failed transaction adds nothing), no dedup needed.
  std::vector<const FinishedTaskCost*> all;
  all.reserve(tasks.size());
  for (const auto& t : tasks)
    all.push_back(&t);
  const std::vector<CostRollupRow> rows = AggregateCost(all);
  sqlite3* db = writer_->db;
  if (auto r = Exec(db, "BEGIN IMMEDIATE"); !r)
    return r;
  SqliteStmt st;
  if (auto r = st.Prepare(db, CostRollupUpsertSql(SqlDialect::kSqlite)); !r) {
    (void)Exec(db, "ROLLBACK");
    return r;
  }
  for (const CostRollupRow& c : rows) {
    const SqlValue v[9] = {SqlValue::Double(c.hour),
                           SqlValue::Text(c.name),
                           SqlValue::Text(c.queue),
                           SqlValue::Text(c.worker),
                           SqlValue::Double(c.worker_seconds),
                           SqlValue::Int(c.runs),
                           SqlValue::Int(c.estimated),
                           SqlValue::Double(c.first_at),
                           SqlValue::Double(c.last_at)};
    st.Bind(v, 9);
    if (const int rc = st.Run(); rc != SQLITE_DONE) {
      Error e = Fail(db, rc, "cost rollup");
      (void)Exec(db, "ROLLBACK");
      return e;
    }
  }
  return Exec(db, "COMMIT");
}

Result<std::vector<CostRollupRow>> SqliteStore::LoadCostRollup(double since) {
  std::lock_guard lock(read_mu_);
  if (!reader_)
    return Error{"not connected"};
  std::vector<CostRollupRow> out;
  auto r = Query(reader_, "SELECT " + std::string(kCostRollupColumns) + " FROM cost_hourly WHERE hour > ?1",
                 {SqlValue::Double(since - 3600)}, [&](const SqlRow& row) {
                   out.push_back(CostRollupRow{row.Double(0), std::string(row.Text(1)), std::string(row.Text(2)),
                                               std::string(row.Text(3)), row.Double(4), row.Int(5), row.Int(6),
                                               row.Double(7), row.Double(8)});
                 });
  if (!r)
    return Error{r.error()};
  return out;
}

Result<bool> SqliteStore::DeleteCostRollupBefore(double cutoff, double counted_cutoff) {
  if (!writer_)
    return Error{"store is not open"};
  if (auto r = Query(writer_->db, "DELETE FROM cost_counted WHERE hour + 3600 <= ?1",
                     {SqlValue::Double(counted_cutoff)}, [](const SqlRow&) {});
      !r) {
    return r;
  }
  return Query(writer_->db, "DELETE FROM cost_hourly WHERE hour + 3600 <= ?1", {SqlValue::Double(cutoff)},
               [](const SqlRow&) {});
}

}  // namespace stalk
