// Stalk — Celery monitoring server.
#include "store/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <unordered_set>

#include "store/cost_rollup.h"
#include "store/schema.h"

namespace stalk {
namespace {

// Any constant: the advisory lock key under which instances migrate one at a time.
constexpr int64_t kMigrationLockKey = 0x5374616c6b01;  // "Stalk" 1

constexpr std::string_view kStageTasks = "stalk_stage_tasks";
constexpr std::string_view kStageTransitions = "stalk_stage_transitions";
constexpr std::string_view kStageWorkers = "stalk_stage_workers";
constexpr std::string_view kStageEvents = "stalk_stage_events";

// ------------------------------------------------------------------ libpq wrappers

class PgResult {
 public:
  explicit PgResult(PGresult* r = nullptr) : r_(r) {}
  PgResult(PgResult&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  PgResult& operator=(PgResult&& o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  PgResult(const PgResult&) = delete;
  ~PgResult() { PQclear(r_); }
  PGresult* get() const { return r_; }
  int rows() const { return PQntuples(r_); }

 private:
  PGresult* r_;
};

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

std::string ConnError(PGconn* c) { return Trim(c ? PQerrorMessage(c) : "out of memory"); }

// Data errors: retrying the same rows cannot help (SQLSTATE classes 22, 23, 42, 54).
bool PermanentState(const PGresult* r) {
  const char* st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (!st || std::strlen(st) < 2) {
    return false;
  }
  const std::string_view cls(st, 2);
  return cls == "22" || cls == "23" || cls == "42" || cls == "54";
}

// Runs sql (no parameters); ok for commands and queries. `permanent`, when given, says whether a
// failure was a data error.
Result<PgResult> Exec(PGconn* c, const std::string& sql, bool* permanent = nullptr) {
  PgResult r(PQexec(c, sql.c_str()));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    if (permanent)
      *permanent = PermanentState(r.get());
    return Error{Trim(r.get() ? PQresultErrorMessage(r.get()) : ConnError(c))};
  }
  return r;
}

Result<PgResult> ExecParams(PGconn* c, const std::string& sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) {
    values.push_back(p.c_str());
  }
  PgResult r(
      PQexecParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  const auto st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return Error{Trim(r.get() ? PQresultErrorMessage(r.get()) : ConnError(c))};
  }
  return r;
}

class PgRow final : public SqlRow {
 public:
  PgRow(const PGresult* r, int row) : r_(r), row_(row) {}
  bool IsNull(int col) const override { return PQgetisnull(r_, row_, col) != 0; }
  int64_t Int(int col) const override {
    int64_t v = 0;
    const std::string_view s = Text(col);
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }
  double Double(int col) const override {
    double v = 0;
    const std::string_view s = Text(col);
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }
  std::string_view Text(int col) const override {
    return {PQgetvalue(r_, row_, col), static_cast<size_t>(PQgetlength(r_, row_, col))};
  }

 private:
  const PGresult* r_;
  int row_;
};

std::string Num(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid (overlongs, surrogates, > U+10FFFF).
size_t Utf8SeqLen(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  else
    return 0;
  if (i + n > s.size())
    return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80)
      return 0;
  }
  if (c == 0xE0 && b(i + 1) < 0xA0)
    return 0;
  if (c == 0xED && b(i + 1) > 0x9F)
    return 0;
  if (c == 0xF0 && b(i + 1) < 0x90)
    return 0;
  if (c == 0xF4 && b(i + 1) > 0x8F)
    return 0;
  return n;
}

// Appends one value in COPY's text format: \N for null, backslash escapes, valid UTF-8 only.
void AppendCopyValue(std::string& out, const SqlValue& v) {
  char buf[32];
  switch (v.kind) {
    case SqlValue::Kind::kNull:
      out += "\\N";
      return;
    case SqlValue::Kind::kInt:
      out.append(buf, std::to_chars(buf, buf + sizeof buf, v.i).ptr);
      return;
    case SqlValue::Kind::kDouble:
      out.append(buf, std::to_chars(buf, buf + sizeof buf, v.d).ptr);
      return;
    case SqlValue::Kind::kText:
      break;
  }
  const std::string_view s = v.s;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (const size_t n = Utf8SeqLen(s, i)) {
        out.append(s.data() + i, n);
        i += n;
      } else {
        out += "\xEF\xBF\xBD";  // U+FFFD
        ++i;
      }
      continue;
    }
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case 0:
        out += "\xEF\xBF\xBD";
        break;
      default:
        out += static_cast<char>(c);
    }
    ++i;
  }
}

void AppendCopyRow(std::string& out, const SqlValue* v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (i)
      out += '\t';
    AppendCopyValue(out, v[i]);
  }
  out += '\n';
}

// COPY `data` (text format rows) into `table` (columns `cols`).
Result<bool> CopyIn(PGconn* c, std::string_view table, std::string_view cols, const std::string& data,
                    bool* permanent) {
  PgResult started(PQexec(c, ("COPY " + std::string(table) + " (" + std::string(cols) + ") FROM STDIN").c_str()));
  if (PQresultStatus(started.get()) != PGRES_COPY_IN) {
    if (permanent)
      *permanent = PermanentState(started.get());
    return Error{"COPY: " + Trim(started.get() ? PQresultErrorMessage(started.get()) : ConnError(c))};
  }
  if (PQputCopyData(c, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(c, nullptr) != 1) {
    return Error{"COPY: " + ConnError(c)};
  }
  Result<bool> out = true;
  while (PGresult* raw = PQgetResult(c)) {
    PgResult r(raw);
    if (PQresultStatus(raw) != PGRES_COMMAND_OK && out) {
      if (permanent)
        *permanent = PermanentState(raw);
      out = Error{Trim(PQresultErrorMessage(raw))};
    }
  }
  return out;
}

Result<PGconn*> Connect(const std::string& url) {
  // Later keywords override earlier ones: the URL's own settings win over these defaults.
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"5", "stalk", url.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (!c || PQstatus(c) != CONNECTION_OK) {
    std::string msg = ConnError(c);
    PQfinish(c);
    return Error{"cannot connect to " + RedactPostgresUrl(url) + ": " + msg};
  }
  // Quiet NOTICEs ("relation already exists, skipping") instead of printing them on stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  return c;
}

Result<bool> Migrate(PGconn* c) {
  auto fail = [&](const std::string& msg) -> Result<bool> {
    Exec(c, "ROLLBACK");
    return Error{"migrating the schema: " + msg};
  };
  if (auto r = Exec(c, "BEGIN"); !r)
    return fail(r.error());
  if (auto r = Exec(c, "SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLockKey) + ")"); !r) {
    return fail(r.error());
  }
  if (auto r = Exec(c, std::string(kCreateSchemaVersion)); !r)
    return fail(r.error());
  auto v = Exec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!v)
    return fail(v.error());
  const int current = static_cast<int>(PgRow(v->get(), 0).Int(0));
  if (current > kSchemaVersion) {
    return fail("the database has schema version " + std::to_string(current) + ", newer than this Stalk's (" +
                std::to_string(kSchemaVersion) + ")");
  }
  for (int version = current + 1; version <= kSchemaVersion; ++version) {
    for (const auto& sql : MigrationStatements(version, SqlDialect::kPostgres)) {
      if (auto r = Exec(c, sql); !r)
        return fail(r.error());
    }
    if (auto r = Exec(c, "INSERT INTO schema_version (version, applied_at) VALUES (" + std::to_string(version) +
                             ", extract(epoch from now()))");
        !r) {
      return fail(r.error());
    }
  }
  if (auto r = Exec(c, "COMMIT"); !r)
    return fail(r.error());
  return true;
}

}  // namespace

std::string RedactPostgresUrl(std::string_view url) {
  std::string out(url);
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t end = std::min(out.find('/', start), out.size());
    const size_t at = out.rfind('@', end);
    if (at != std::string::npos && at >= start) {
      const size_t colon = out.find(':', start);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    const size_t v = p + 9;
    const size_t e = std::min(out.find_first_of("& ", v), out.size());
    out.replace(v, e - v, "***");
  }
  return out;
}

PostgresStore::PostgresStore(StoreConfig config)
    : config_(std::move(config)), redacted_(RedactPostgresUrl(config_.url)) {}

PostgresStore::~PostgresStore() {
  PQfinish(writer_);
  PQfinish(reader_);
}

Result<std::unique_ptr<PostgresStore>> PostgresStore::Open(const StoreConfig& config) {
  std::unique_ptr<PostgresStore> s(new PostgresStore(config));
  if (auto r = s->OpenWriter(); !r) {
    return Error{r.error()};
  }
  std::lock_guard lock(s->read_mu_);
  if (auto r = s->ReaderLocked(); !r) {
    return Error{r.error()};
  }
  return s;
}

Result<bool> PostgresStore::OpenWriter() {
  PQfinish(writer_);
  writer_ = nullptr;
  auto c = Connect(config_.url);
  if (!c) {
    return Error{c.error()};
  }
  writer_ = *c;
  if (auto r = Migrate(writer_); !r) {
    return r;
  }
  for (auto [stage, like] : {std::pair{kStageTasks, "tasks"}, std::pair{kStageTransitions, "task_transitions"},
                             std::pair{kStageWorkers, "workers"}, std::pair{kStageEvents, "events"}}) {
    if (auto r = Exec(writer_, "CREATE TEMP TABLE IF NOT EXISTS " + std::string(stage) + " (LIKE " + like +
                                   " INCLUDING DEFAULTS) ON COMMIT DELETE ROWS");
        !r) {
      return Error{r.error()};
    }
  }
  return true;
}

Result<PGconn*> PostgresStore::ReaderLocked() {
  if (reader_ && PQstatus(reader_) == CONNECTION_OK) {
    return reader_;
  }
  PQfinish(reader_);
  reader_ = nullptr;
  auto c = Connect(config_.url);
  if (!c) {
    return Error{c.error()};
  }
  reader_ = *c;
  return reader_;
}

Result<bool> PostgresStore::Reconnect() { return OpenWriter(); }

// ------------------------------------------------------------------ writes

Result<bool> PostgresStore::Write(const WriteBatch& batch) {
  last_permanent_ = false;
  if (!writer_ || PQstatus(writer_) != CONNECTION_OK) {
    return Error{"not connected"};
  }
  if (auto r = Exec(writer_, "BEGIN"); !r) {
    return Error{r.error()};
  }
  auto r = WriteInTransaction(batch);
  if (r) {
    if (auto c = Exec(writer_, "COMMIT", &last_permanent_); !c) {
      r = Error{c.error()};
    }
  }
  if (!r) {
    Exec(writer_, "ROLLBACK");
  }
  return r;
}

Result<bool> PostgresStore::WriteInTransaction(const WriteBatch& batch) {
  std::array<SqlValue, kTaskColumns> v{};
  std::string data;
  std::string loadavg;
  auto load = [&](std::string_view stage, std::string_view cols, const std::string& upsert) -> Result<bool> {
    if (auto r = CopyIn(writer_, stage, cols, data, &last_permanent_); !r) {
      return r;
    }
    if (auto r = Exec(writer_, upsert, &last_permanent_); !r) {
      return Error{r.error()};
    }
    return true;
  };
  if (!batch.tasks.empty()) {
    data.clear();
    data.reserve(batch.tasks.size() * 400);
    for (const TaskRecord& t : batch.tasks) {
      TaskValues(t, batch.written_at, v.data());
      AppendCopyRow(data, v.data(), kTaskColumns);
    }
    if (auto r = load(kStageTasks, TaskColumnList(), TaskUpsertFromSql(kStageTasks, config_.shared)); !r)
      return r;
  }
  if (!batch.transitions.empty()) {
    data.clear();
    for (const TransitionRecord& t : batch.transitions) {
      TransitionValues(t, v.data());
      AppendCopyRow(data, v.data(), kTransitionColumns);
    }
    if (auto r = load(kStageTransitions, TransitionColumnList(), TransitionInsertFromSql(kStageTransitions)); !r) {
      return r;
    }
  }
  if (!batch.workers.empty()) {
    data.clear();
    for (const WorkerRecord& w : batch.workers) {
      WorkerValues(w, batch.written_at, loadavg, v.data());
      AppendCopyRow(data, v.data(), kWorkerColumns);
    }
    if (auto r = load(kStageWorkers, WorkerColumnList(), WorkerUpsertFromSql(kStageWorkers)); !r)
      return r;
  }
  if (!batch.events.empty()) {
    data.clear();
    for (const EventRecord& e : batch.events) {
      EventValues(e, v.data());
      AppendCopyRow(data, v.data(), kEventColumns);
    }
    if (auto r = load(kStageEvents, EventColumnList(), EventInsertFromSql(kStageEvents)); !r)
      return r;
  }
  return true;
}

Result<RetentionStep> PostgresStore::DeleteOlderThan(double cutoff, size_t max_rows) {
  if (!writer_ || PQstatus(writer_) != CONNECTION_OK) {
    return Error{"not connected"};
  }
  const std::vector<std::string> args = {Num(cutoff), std::to_string(max_rows)};
  if (auto r = Exec(writer_, "BEGIN"); !r)
    return Error{r.error()};
  auto fail = [&](const std::string& msg) -> Result<RetentionStep> {
    Exec(writer_, "ROLLBACK");
    return Error{"retention: " + msg};
  };
  RetentionStep step;
  // SKIP LOCKED: two instances enforcing retention at once share the work instead of waiting.
  auto tasks = ExecParams(writer_,
                          "WITH doomed AS (SELECT id FROM tasks WHERE timestamp < $1 ORDER BY timestamp LIMIT $2 "
                          "FOR UPDATE SKIP LOCKED), "
                          "gone AS (DELETE FROM task_transitions WHERE task_id IN (SELECT id FROM doomed)) "
                          "DELETE FROM tasks WHERE id IN (SELECT id FROM doomed)",
                          args);
  if (!tasks)
    return fail(tasks.error());
  step.tasks = std::strtoull(PQcmdTuples(tasks->get()), nullptr, 10);
  auto events = ExecParams(writer_,
                           "DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE at < $1 ORDER BY at "
                           "LIMIT $2)",
                           args);
  if (!events)
    return fail(events.error());
  step.events = std::strtoull(PQcmdTuples(events->get()), nullptr, 10);
  step.more = step.tasks >= max_rows || step.events >= max_rows;
  if (!step.more) {
    if (auto r = ExecParams(writer_, "DELETE FROM workers WHERE last_heartbeat < $1", {args[0]}); !r) {
      return fail(r.error());
    }
  }
  if (auto r = Exec(writer_, "COMMIT"); !r)
    return fail(r.error());
  return step;
}

// ------------------------------------------------------------------ reads

#define STALK_PG_READER()         \
  std::lock_guard lock(read_mu_); \
  auto conn = ReaderLocked();     \
  if (!conn) {                    \
    return Error{conn.error()};   \
  }                               \
  PGconn* c = *conn

Result<std::optional<double>> PostgresStore::NthNewestTimestamp(size_t n) {
  STALK_PG_READER();
  auto r = ExecParams(c, "SELECT timestamp FROM tasks ORDER BY timestamp DESC LIMIT 1 OFFSET $1",
                      {std::to_string(n > 0 ? n - 1 : 0)});
  if (!r)
    return Error{r.error()};
  if (r->rows() == 0)
    return std::optional<double>();
  return std::optional<double>(PgRow(r->get(), 0).Double(0));
}

Result<size_t> PostgresStore::ForEachRecentTask(size_t limit, const std::function<void(std::vector<TaskRecord>&)>& fn) {
  std::optional<double> cutoff;
  if (limit > 0) {
    auto nth = NthNewestTimestamp(limit);
    if (!nth)
      return Error{nth.error()};
    cutoff = *nth;
  }
  STALK_PG_READER();
  auto fail = [&](const std::string& msg) -> Result<size_t> {
    Exec(c, "ROLLBACK");
    return Error{msg};
  };
  if (auto r = Exec(c, "BEGIN READ ONLY"); !r)
    return fail(r.error());
  // A cursor streams the rows: a plain SELECT would hold the whole result in libpq's memory.
  if (auto r = Exec(c, "DECLARE stalk_restore NO SCROLL CURSOR FOR SELECT " + TaskColumnList() +
                           " FROM tasks WHERE timestamp >= " + Num(cutoff.value_or(0)) + " ORDER BY timestamp");
      !r) {
    return fail(r.error());
  }
  const std::string fetch = "FETCH " + std::to_string(kRestoreChunk) + " FROM stalk_restore";
  std::vector<TaskRecord> chunk;
  size_t n = 0;
  for (;;) {
    auto r = Exec(c, fetch);
    if (!r)
      return fail(r.error());
    const auto rows = static_cast<size_t>(r->rows());
    chunk.resize(rows);
    for (size_t i = 0; i < rows; ++i) {
      ReadTaskRow(PgRow(r->get(), static_cast<int>(i)), chunk[i]);
    }
    n += rows;
    if (rows > 0)
      fn(chunk);
    if (rows < kRestoreChunk)
      break;
  }
  Exec(c, "CLOSE stalk_restore");
  if (auto r = Exec(c, "COMMIT"); !r)
    return fail(r.error());
  return n;
}

Result<std::vector<WorkerRecord>> PostgresStore::LoadWorkers() {
  STALK_PG_READER();
  auto r = Exec(c, "SELECT " + WorkerColumnList() + " FROM workers ORDER BY last_heartbeat");
  if (!r)
    return Error{r.error()};
  std::vector<WorkerRecord> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(WorkerFromRow(PgRow(r->get(), i)));
  }
  return out;
}

Result<std::optional<TaskRecord>> PostgresStore::LoadTask(std::string_view id) {
  STALK_PG_READER();
  auto r = ExecParams(c, "SELECT " + TaskColumnList() + " FROM tasks WHERE id = $1", {std::string(id)});
  if (!r)
    return Error{r.error()};
  if (r->rows() == 0)
    return std::optional<TaskRecord>();
  return std::optional<TaskRecord>(TaskFromRow(PgRow(r->get(), 0)));
}

Result<std::vector<TaskRecord>> PostgresStore::SearchTasks(const TaskSearch& q) {
  STALK_PG_READER();
  std::vector<std::string> params;
  const std::string sql = TaskSearchSql(SqlDialect::kPostgres, q, params);
  auto r = ExecParams(c, sql, params);
  if (!r)
    return Error{r.error()};
  std::vector<TaskRecord> out;
  out.reserve(static_cast<size_t>(r->rows()));
  for (int i = 0; i < r->rows(); ++i) {
    out.push_back(TaskFromRow(PgRow(r->get(), i)));
  }
  return out;
}

Result<std::vector<std::string>> PostgresStore::LoadChildren(std::string_view id) {
  STALK_PG_READER();
  auto r = ExecParams(c, "SELECT id FROM tasks WHERE parent_id = $1 ORDER BY timestamp", {std::string(id)});
  if (!r)
    return Error{r.error()};
  std::vector<std::string> out;
  for (int i = 0; i < r->rows(); ++i) {
    out.emplace_back(PgRow(r->get(), i).Text(0));
  }
  return out;
}

Result<std::vector<TransitionRecord>> PostgresStore::LoadTransitions(std::string_view id) {
  STALK_PG_READER();
  auto r = ExecParams(c, "SELECT task_id, at, state FROM task_transitions WHERE task_id = $1 ORDER BY at",
                      {std::string(id)});
  if (!r)
    return Error{r.error()};
  std::vector<TransitionRecord> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgRow row(r->get(), i);
    out.push_back({std::string(row.Text(0)), std::string(row.Text(2)), row.Double(1)});
  }
  return out;
}

Result<size_t> PostgresStore::CountTasks() {
  STALK_PG_READER();
  auto r = Exec(c, "SELECT COUNT(*) FROM tasks");
  if (!r)
    return Error{r.error()};
  return static_cast<size_t>(PgRow(r->get(), 0).Int(0));
}

Result<std::vector<AuditEntry>> PostgresStore::LoadAudit(size_t limit) {
  STALK_PG_READER();
  auto r = ExecParams(c,
                      "SELECT at, actor, role, remote, action, target, params, result, message FROM audit_log"
                      " ORDER BY at DESC LIMIT $1",
                      {std::to_string(limit)});
  if (!r)
    return Error{r.error()};
  std::vector<AuditEntry> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgRow row(r->get(), i);
    out.push_back(AuditEntry{row.Double(0), std::string(row.Text(1)), std::string(row.Text(2)),
                             std::string(row.Text(3)), std::string(row.Text(4)), std::string(row.Text(5)),
                             std::string(row.Text(6)), std::string(row.Text(7)), std::string(row.Text(8))});
  }
  return out;
}

Result<bool> PostgresStore::AppendAudit(const std::vector<AuditEntry>& entries) {
  if (writer_ == nullptr)
    return Error{"store is not open"};
  for (const AuditEntry& e : entries) {
    char at[32];
    std::snprintf(at, sizeof at, "%.6f", e.at);
    auto r = ExecParams(writer_,
                        "INSERT INTO audit_log (at, actor, role, remote, action, target, params, result, message)"
                        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        {at, e.actor, e.role, e.remote, e.action, e.target, e.params, e.result, e.message});
    if (!r)
      return Error{r.error()};
  }
  return true;
}

Result<int> PostgresStore::SchemaVersion() {
  STALK_PG_READER();
  auto r = Exec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!r)
    return Error{r.error()};
  return static_cast<int>(PgRow(r->get(), 0).Int(0));
}

#undef STALK_PG_READER

// ------------------------------------------------------------------ silences, cost rollup (schema 4)

Result<bool> PostgresStore::SaveSilence(const SilenceRecord& s) {
  if (writer_ == nullptr)
    return Error{"store is not open"};
  auto r =
      ExecParams(writer_,
                 "INSERT INTO silences (" + std::string(kSilenceColumns) +
                     ") VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers,"
                     " starts_at = excluded.starts_at, ends_at = excluded.ends_at,"
                     " created_by = excluded.created_by, comment = excluded.comment",
                 {s.id, s.matchers_json, Num(s.starts_at), Num(s.ends_at), s.created_by, s.comment});
  if (!r)
    return Error{r.error()};
  return true;
}

Result<bool> PostgresStore::DeleteSilence(std::string_view id) {
  if (writer_ == nullptr)
    return Error{"store is not open"};
  auto r = ExecParams(writer_, "DELETE FROM silences WHERE id = $1", {std::string(id)});
  if (!r)
    return Error{r.error()};
  return true;
}

Result<std::vector<SilenceRecord>> PostgresStore::LoadSilences() {
  std::lock_guard lock(read_mu_);
  auto conn = ReaderLocked();
  if (!conn)
    return Error{conn.error()};
  auto r = Exec(*conn, "SELECT " + std::string(kSilenceColumns) + " FROM silences ORDER BY starts_at, id");
  if (!r)
    return Error{r.error()};
  std::vector<SilenceRecord> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgRow row(r->get(), i);
    out.push_back(SilenceRecord{std::string(row.Text(0)), std::string(row.Text(1)), row.Double(2), row.Double(3),
                                std::string(row.Text(4)), std::string(row.Text(5))});
  }
  return out;
}

Result<bool> PostgresStore::AddCostRollup(const std::vector<FinishedTaskCost>& tasks) {
  if (writer_ == nullptr)
    return Error{"store is not open"};
  if (tasks.empty())
    return true;
  auto fail = [&](const std::string& e) -> Result<bool> {
    Exec(writer_, "ROLLBACK");
    return Error{"cost rollup: " + e};
  };
  if (auto r = Exec(writer_, "BEGIN"); !r)
    return Error{r.error()};
  // Claim the task ids; only the ones no instance counted before are added. Chunks of 1,000 ids keep
  // each statement's parameter list small.
  std::unordered_set<std::string> claimed;
  for (size_t i = 0; i < tasks.size(); i += 1000) {
    const size_t n = std::min<size_t>(1000, tasks.size() - i);
    std::string sql = "INSERT INTO cost_counted (task_id, hour) VALUES ";
    std::vector<std::string> params;
    params.reserve(2 * n);
    for (size_t k = 0; k < n; ++k) {
      sql += (k ? ", ($" : "($") + std::to_string(2 * k + 1) + ", $" + std::to_string(2 * k + 2) + ")";
      params.push_back(tasks[i + k].task_id);
      params.push_back(Num(tasks[i + k].row.hour));
    }
    sql += " ON CONFLICT (task_id) DO NOTHING RETURNING task_id";
    auto r = ExecParams(writer_, sql, params);
    if (!r)
      return fail(r.error());
    for (int row = 0; row < r->rows(); ++row) {
      claimed.emplace(PgRow(r->get(), row).Text(0));
    }
  }
  std::vector<const FinishedTaskCost*> fresh;
  for (const auto& t : tasks) {
    if (claimed.contains(t.task_id))
      fresh.push_back(&t);
  }
  // In key order, so two instances adding to the same hours lock rows alike and cannot deadlock.
  const std::string sql = CostRollupUpsertSql(SqlDialect::kPostgres);
  for (const CostRollupRow& c : AggregateCost(fresh)) {
    auto r = ExecParams(writer_, sql,
                        {Num(c.hour), c.name, c.queue, c.worker, Num(c.worker_seconds), std::to_string(c.runs),
                         std::to_string(c.estimated), Num(c.first_at), Num(c.last_at)});
    if (!r)
      return fail(r.error());
  }
  if (auto r = Exec(writer_, "COMMIT"); !r)
    return fail(r.error());
  return true;
}

Result<std::vector<CostRollupRow>> PostgresStore::LoadCostRollup(double since) {
  std::lock_guard lock(read_mu_);
  auto conn = ReaderLocked();
  if (!conn)
    return Error{conn.error()};
  auto r = ExecParams(*conn, "SELECT " + std::string(kCostRollupColumns) + " FROM cost_hourly WHERE hour > $1",
                      {Num(since - 3600)});
  if (!r)
    return Error{r.error()};
  std::vector<CostRollupRow> out;
  for (int i = 0; i < r->rows(); ++i) {
    PgRow row(r->get(), i);
    out.push_back(CostRollupRow{row.Double(0), std::string(row.Text(1)), std::string(row.Text(2)),
                                std::string(row.Text(3)), row.Double(4), row.Int(5), row.Int(6), row.Double(7),
                                row.Double(8)});
  }
  return out;
}

Result<bool> PostgresStore::DeleteCostRollupBefore(double cutoff, double counted_cutoff) {
  if (writer_ == nullptr)
    return Error{"store is not open"};
  if (auto r = ExecParams(writer_, "DELETE FROM cost_counted WHERE hour + 3600 <= $1", {Num(counted_cutoff)}); !r) {
    return Error{r.error()};
  }
  auto r = ExecParams(writer_, "DELETE FROM cost_hourly WHERE hour + 3600 <= $1", {Num(cutoff)});
  if (!r)
    return Error{r.error()};
  return true;
}

}  // namespace stalk
