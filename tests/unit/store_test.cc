// Stalk — Celery monitoring server.
// Unit tests of store/: the SQLite backend written, closed, reopened and read back (storage tests
// write, restart, read back); migrations idempotent; coalescing of repeated task updates within a
// batch; retention by age and by count; a read-only database (errors counted, nothing crashes, rows
// kept for the retry); transient and data errors through a fault-injecting Store; the whole loop
// live state -> StoreWriter -> SQLite -> RestoreState -> a fresh state renders the same JSON.
// Backend-neutral tests also run against PostgreSQL when STALK_TEST_PG_URL names a database.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/json_writer.h"
#include "protocol/event.h"
#include "state/cluster_state.h"
#include "state/shared_state.h"
#include "state/task_json.h"
#include "state/task_record.h"
#include "store/cost_rollup.h"
#include "store/history_loader.h"
#include "store/postgres_store.h"
#include "store/row_codec.h"
#include "store/schema.h"
#include "store/store.h"
#include "store/store_report.h"
#include "store/store_writer.h"

namespace stalk {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ------------------------------------------------------------------ helpers

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "stalk-store-test.XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

std::string Uuid(int n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012x", n, n);
  return buf;
}

TaskRecord Record(const std::string& id, double ts, std::string state = "SUCCESS") {
  TaskRecord r;
  r.id = id;
  r.state = std::move(state);
  r.name = "app.add";
  r.worker = "w1@lab";
  r.client = "gen1@web";
  r.queue = "celery";
  r.received = ts - 0.5;
  r.started = ts - 0.4;
  r.succeeded = ts;
  r.timestamp = ts;
  r.runtime = 0.4;
  r.retries = 0;
  r.clock = 42;
  r.args = "(2, 3)";
  r.kwargs = "{}";
  r.result = "5";
  r.root_id = id;
  r.has_state_event = true;
  return r;
}

std::string Json(const TaskRecord& r) {
  JsonWriter w;
  WriteTaskRecordJson(r, {}, w);
  return w.Take();
}

OptStr S(std::string_view v) {
  OptStr o;
  o.value = v;
  o.present = true;
  return o;
}

Event TaskEv(std::string_view type, std::string_view uuid, double ts, std::string_view host = "w1@lab") {
  Event e;
  e.type = type;
  e.kind = ClassifyEventType(type);
  e.uuid = uuid;
  e.hostname = host;
  e.timestamp = ts;
  e.has_timestamp = true;
  return e;
}

// sent -> received -> started -> succeeded for one task.
void RunTask(ClusterState& st, const std::string& id, double ts, std::string_view name = "app.add") {
  Event sent = TaskEv("task-sent", id, ts, "gen1@web");
  sent.name = S(name);
  sent.args = S("(2, 3)");
  sent.kwargs = S("{}");
  sent.queue = S("celery");
  sent.retries = 0;
  st.Apply(sent, ts);
  Event rcv = TaskEv("task-received", id, ts + 0.1);
  rcv.name = S(name);
  rcv.args = S("(2, 3)");
  rcv.kwargs = S("{}");
  rcv.root_id = S(id);
  rcv.retries = 0;
  st.Apply(rcv, ts + 0.1);
  st.Apply(TaskEv("task-started", id, ts + 0.2), ts + 0.2);
  Event done = TaskEv("task-succeeded", id, ts + 0.3);
  done.result = S("5");
  done.runtime = 0.1;
  st.Apply(done, ts + 0.3);
}

size_t SqliteCount(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  size_t n = 0;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    n = static_cast<size_t>(sqlite3_column_int64(st, 0));
  } else {
    ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

std::unique_ptr<Store> MustOpen(const std::string& url) {
  auto s = OpenStore(StoreConfig{url});
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error());
  return s.ok() ? std::move(*s) : nullptr;
}

// ------------------------------------------------------------------ plain functions

TEST(StoreDuration, ParsesUnits) {
  EXPECT_EQ(*ParseDuration("7d"), 7 * 86400);
  EXPECT_EQ(*ParseDuration("12h"), 12 * 3600);
  EXPECT_EQ(*ParseDuration("30m"), 1800);
  EXPECT_EQ(*ParseDuration("3600s"), 3600);
  EXPECT_EQ(*ParseDuration("90"), 90);
  EXPECT_EQ(*ParseDuration("0"), 0);
  EXPECT_EQ(*ParseDuration(""), 0);
  EXPECT_DOUBLE_EQ(*ParseDuration("1.5h"), 5400);
  EXPECT_FALSE(ParseDuration("7 days").ok());
  EXPECT_FALSE(ParseDuration("-1d").ok());
  EXPECT_FALSE(ParseDuration("d").ok());
}

TEST(StorePostgres, RedactsPasswords) {
  EXPECT_EQ(RedactPostgresUrl("postgresql://stalk:s3cret@db:5432/hist"), "postgresql://stalk:***@db:5432/hist");
  EXPECT_EQ(RedactPostgresUrl("postgres://db/hist?password=s3cret&sslmode=require"),
            "postgres://db/hist?password=***&sslmode=require");
  EXPECT_EQ(RedactPostgresUrl("postgresql://stalk@db/hist"), "postgresql://stalk@db/hist");
  EXPECT_TRUE(IsPostgresUrl("postgresql://x/y"));
  EXPECT_TRUE(IsPostgresUrl("postgres://x/y"));
  EXPECT_FALSE(IsPostgresUrl("stalk.db"));
}

TEST(StoreOpen, RefusesUnknownSchemesAndNonDatabases) {
  TempDir dir;
  auto mysql = OpenStore(StoreConfig{"mysql://x/y"});
  ASSERT_FALSE(mysql.ok());
  EXPECT_NE(mysql.error().find("unsupported"), std::string::npos) << mysql.error();
  // A Flower shelve file (or any non-SQLite file) under the same name is refused with a hint.
  const std::string path = dir.File("flower");
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fputs("this is not a sqlite database, it is long enough to have a header.............................", f);
  std::fclose(f);
  auto bad = OpenStore(StoreConfig{path});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("not a SQLite database"), std::string::npos) << bad.error();
}

// ------------------------------------------------------------------ SQLite: write, restart, read back

TEST(SqliteStoreTest, WriteRestartReadBack) {
  TempDir dir;
  const std::string path = dir.File("stalk.db");
  std::vector<TaskRecord> written;
  {
    auto store = MustOpen(path);
    ASSERT_TRUE(store);
    WriteBatch b;
    b.written_at = 1700000100;
    for (int i = 0; i < 50; ++i) {
      b.tasks.push_back(Record(Uuid(i), 1700000000 + i));
    }
    // Nulls, a custom state, a text id, a failure with traceback, unicode and a NUL byte.
    TaskRecord odd = Record("my-custom-id", 1700000070, "PROGRESS");
    odd.result.reset();
    odd.runtime = -1;
    odd.retries = -1;
    odd.parent_id = Uuid(3);
    odd.kwargs = std::string("{'name': 'Zoë \xE2\x9C\x93', 'nul': '") + '\0' + "'}";
    odd.lost = true;
    odd.lost_at = 1700000071;
    odd.requeue = true;
    odd.truncated = true;
    b.tasks.push_back(odd);
    TaskRecord failed = Record(Uuid(99), 1700000080, "FAILURE");
    failed.exception = "ValueError('boom')";
    failed.traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: boom\n";
    failed.succeeded = 0;
    failed.failed = 1700000080;
    b.tasks.push_back(failed);
    b.transitions.push_back({Uuid(1), "RECEIVED", 1700000000.5});
    b.transitions.push_back({Uuid(1), "SUCCESS", 1700000001});
    b.transitions.push_back({Uuid(1), "SUCCESS", 1700000001});  // a duplicate is ignored
    WorkerRecord w;
    w.hostname = "w1@lab";
    w.freq = 2;
    w.last_heartbeat = 1700000090;
    w.pid = 4242;
    w.has_loadavg = true;
    w.loadavg = {0.25, 0.5, 1.75};
    w.sw_ident = "py-celery";
    w.sw_ver = "5.2.6";
    w.sw_sys = "Linux";
    w.processed = 51;
    b.workers.push_back(w);
    auto r = store->Write(b);
    ASSERT_TRUE(r.ok()) << r.error();
    written = b.tasks;
  }
  // "Restart": a new process opens the same file.
  auto store = MustOpen(path);
  ASSERT_TRUE(store);
  EXPECT_EQ(*store->SchemaVersion(), kSchemaVersion);
  EXPECT_EQ(*store->CountTasks(), written.size());
  for (const auto& w : written) {
    auto got = store->LoadTask(w.id);
    ASSERT_TRUE(got.ok()) << got.error();
    ASSERT_TRUE(got->has_value()) << w.id;
    EXPECT_EQ(Json(**got), Json(w)) << w.id;
    EXPECT_EQ((*got)->requeue, w.requeue);
    EXPECT_EQ((*got)->truncated, w.truncated);
    EXPECT_EQ((*got)->has_state_event, w.has_state_event);
  }
  EXPECT_FALSE(store->LoadTask("nope")->has_value());
  auto children = store->LoadChildren(Uuid(3));
  ASSERT_TRUE(children.ok());
  EXPECT_EQ(*children, std::vector<std::string>{"my-custom-id"});
  auto transitions = store->LoadTransitions(Uuid(1));
  ASSERT_TRUE(transitions.ok());
  ASSERT_EQ(transitions->size(), 2u);
  EXPECT_EQ((*transitions)[0].state, "RECEIVED");
  EXPECT_EQ((*transitions)[1].state, "SUCCESS");
  auto workers = store->LoadWorkers();
  ASSERT_TRUE(workers.ok());
  ASSERT_EQ(workers->size(), 1u);
  EXPECT_EQ((*workers)[0].hostname, "w1@lab");
  EXPECT_EQ((*workers)[0].pid, 4242);
  EXPECT_TRUE((*workers)[0].has_loadavg);
  EXPECT_DOUBLE_EQ((*workers)[0].loadavg[2], 1.75);
  EXPECT_EQ((*workers)[0].sw_ver, "5.2.6");
  // The most recent 10 in the order they were first written, oldest first; the n-th newest timestamp
  // (retention by count) likewise.
  std::vector<std::string> recent;
  auto n = store->ForEachRecentTask(10, [&](std::vector<TaskRecord>& chunk) {
    for (auto& r : chunk)
      recent.push_back(r.id);
  });
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(*n, 10u);
  std::vector<std::string> expect;
  for (size_t i = written.size() - 10; i < written.size(); ++i)
    expect.push_back(written[i].id);
  EXPECT_EQ(recent, expect);
  size_t all = 0;
  ASSERT_TRUE(store->ForEachRecentTask(0, [&](std::vector<TaskRecord>& chunk) { all += chunk.size(); }).ok());
  EXPECT_EQ(all, written.size());
  auto nth = store->NthNewestTimestamp(10);
  ASSERT_TRUE(nth.ok() && nth->has_value());
  EXPECT_EQ(**nth, 1700000042);  // 80, 70, 49, ..., 42
  EXPECT_FALSE(store->NthNewestTimestamp(1000)->has_value());
}

TEST(SqliteStoreTest, UpsertReplacesTheWholeRecord) {
  TempDir dir;
  auto store = MustOpen(dir.File("s.db"));
  ASSERT_TRUE(store);
  TaskRecord r = Record(Uuid(1), 100, "STARTED");
  r.result.reset();
  WriteBatch b;
  b.tasks = {r};
  ASSERT_TRUE(store->Write(b).ok());
  r.state = "SUCCESS";
  r.result = "5";
  r.timestamp = 101;
  b.tasks = {r};
  ASSERT_TRUE(store->Write(b).ok());
  EXPECT_EQ(*store->CountTasks(), 1u);
  EXPECT_EQ(Json(**store->LoadTask(Uuid(1))), Json(r));
  // SQLite mirrors its one writer exactly: a field cleared in memory is cleared in the store.
  r.result.reset();
  b.tasks = {r};
  ASSERT_TRUE(store->Write(b).ok());
  EXPECT_FALSE((*store->LoadTask(Uuid(1)))->result.has_value());
}

TEST(SqliteStoreTest, MigrationsAreIdempotent) {
  TempDir dir;
  const std::string path = dir.File("m.db");
  for (int i = 0; i < 3; ++i) {
    auto store = MustOpen(path);
    ASSERT_TRUE(store);
    EXPECT_EQ(*store->SchemaVersion(), kSchemaVersion);
    WriteBatch b;
    b.tasks = {Record(Uuid(i), 100 + i)};
    ASSERT_TRUE(store->Write(b).ok());
  }
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM schema_version"), static_cast<size_t>(kSchemaVersion));
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM tasks"), 3u);
  // Migration 3 keeps only the indexes Stalk's queries read: timestamp (retention, history) and parent.
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_%'"), 2u);
  // A database from a newer Stalk is refused rather than misread.
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 0)", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  auto newer = OpenStore(StoreConfig{path});
  ASSERT_FALSE(newer.ok());
  EXPECT_NE(newer.error().find("newer"), std::string::npos) << newer.error();
}

TEST(SqliteStoreTest, AuditLogIsAppendedAndReadNewestFirst) {
  TempDir dir;
  auto store = MustOpen(dir.File("a.db"));
  ASSERT_TRUE(store);
  std::vector<AuditEntry> entries;
  for (int i = 0; i < 5; ++i) {
    entries.push_back(AuditEntry{1000.0 + i, "token:ops", "operator", "127.0.0.1", "revoke",
                                 "task-" + std::to_string(i), "{\"terminate\":false}", "ok", i == 4 ? "revoked" : ""});
  }
  ASSERT_TRUE(store->AppendAudit(entries).ok());
  auto got = store->LoadAudit(3);
  ASSERT_TRUE(got.ok()) << got.error();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0].target, "task-4");
  EXPECT_EQ((*got)[0].message, "revoked");
  EXPECT_EQ((*got)[0].actor, "token:ops");
  EXPECT_EQ((*got)[0].params, "{\"terminate\":false}");
  EXPECT_EQ((*got)[2].target, "task-2");
  EXPECT_EQ(store->LoadAudit(100)->size(), 5u);
}

TEST(SqliteStoreTest, RetentionDeletesOldestInSteps) {
  TempDir dir;
  const std::string path = dir.File("r.db");
  auto store = MustOpen(path);
  ASSERT_TRUE(store);
  WriteBatch b;
  for (int i = 0; i < 25; ++i) {
    b.tasks.push_back(Record(Uuid(i), 1000 + i));
    b.transitions.push_back({Uuid(i), "SUCCESS", 1000.0 + i});
  }
  EventRecord e;
  e.at = 1001;
  e.type = "task-succeeded";
  e.fields_json = "{}";
  b.events = {e, e};
  e.at = 1020;
  b.events.push_back(e);
  ASSERT_TRUE(store->Write(b).ok());
  // Steps of 4 rows until done: tasks 1000..1009 go (10 rows = 3 steps).
  size_t tasks = 0, steps = 0;
  for (;;) {
    auto step = store->DeleteOlderThan(1010, 4);
    ASSERT_TRUE(step.ok()) << step.error();
    tasks += step->tasks;
    ++steps;
    if (!step->more)
      break;
    ASSERT_LT(steps, 10u);
  }
  EXPECT_EQ(tasks, 10u);
  EXPECT_EQ(steps, 3u);
  EXPECT_EQ(*store->CountTasks(), 15u);
  EXPECT_FALSE(store->LoadTask(Uuid(9))->has_value());
  EXPECT_TRUE(store->LoadTask(Uuid(10))->has_value());
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM task_transitions"), 15u);
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM events"), 1u);
}

// ------------------------------------------------------------------ coalescing

TEST(StoreCodec, CoalescesUpdatesOfATaskWithinABatch) {
  ClusterState st;
  std::string bytes;
  struct Capture : StateListener {
    std::string* out;
    void OnTaskEvent(const ClusterState& s, const Task& t, const Event& ev, TaskState previous) override {
      const bool transition = t.state != previous || (ev.kind == EventKind::kTaskSent && !t.has_state_event);
      EncodeTaskRow(s, t, transition, *out);
    }
  } capture;
  capture.out = &bytes;
  st.AddListener(&capture);
  RunTask(st, Uuid(1), 100);
  RunTask(st, Uuid(2), 200);
  BatchBuilder b;
  EXPECT_EQ(b.Add(bytes), 8u);
  WriteBatch batch = b.Take(300);
  ASSERT_EQ(batch.tasks.size(), 2u);  // 8 rows, 2 tasks: the last record of each
  EXPECT_EQ(batch.tasks[0].id, Uuid(1));
  EXPECT_EQ(batch.tasks[0].state, "SUCCESS");
  EXPECT_EQ(batch.tasks[0].result, "5");
  EXPECT_EQ(batch.tasks[0].client, "gen1@web");
  EXPECT_EQ(batch.tasks[0].queue, "celery");
  ASSERT_EQ(batch.transitions.size(), 8u);  // the timeline keeps every step
  std::vector<std::string> states;
  for (const auto& t : batch.transitions) {
    if (t.task_id == Uuid(1))
      states.push_back(t.state);
  }
  EXPECT_EQ(states, (std::vector<std::string>{"PENDING", "RECEIVED", "STARTED", "SUCCESS"}));
  EXPECT_EQ(Json(batch.tasks[1]), Json(MakeTaskRecord(st, *st.FindTask(Uuid(2)))));
  EXPECT_TRUE(b.Take(0).empty());
}

// ------------------------------------------------------------------ StoreWriter + restore, end to end

StoreWriterOptions WriterOptions(const std::string& url) {
  StoreWriterOptions o;
  o.config.url = url;
  o.flush_interval = 0.01;
  o.retry_initial = 0.01;
  o.retry_max = 0.05;
  o.stop_timeout = 0.5;
  return o;
}

TEST(StoreWriterTest, LiveStateRoundTripsThroughTheStore) {
  TempDir dir;
  const std::string path = dir.File("live.db");
  SharedState live(StateOptions{});
  std::vector<std::string> ids;
  {
    StoreWriter writer(WriterOptions(path));
    ASSERT_TRUE(writer.Open().ok());
    writer.Start();
    {
      auto w = live.Write();
      w->AddListener(&writer);
      Event online = TaskEv("worker-online", "", 99);
      online.kind = EventKind::kWorkerOnline;
      online.freq = 2.0;
      online.sw_ver = S("5.2.6");
      w->Apply(online, 99);
      for (int i = 0; i < 300; ++i) {
        ids.push_back(Uuid(i));
        RunTask(*w, ids.back(), 100 + i, i % 3 ? "app.add" : "app.mul");
      }
      // A child (parent link), a failure, a custom state.
      const std::string parent = Uuid(7), failed = Uuid(5), progress = "prog-1";  // events hold views
      Event child = TaskEv("task-received", "child-1", 500);
      child.name = S("app.child");
      child.parent_id = S(parent);
      child.root_id = S(parent);
      w->Apply(child, 500);
      Event fail = TaskEv("task-failed", failed, 501);
      fail.exception = S("ValueError('x')");
      fail.traceback = S("Traceback\n...");
      w->Apply(fail, 501);
      w->Apply(TaskEv("task-received", progress, 502), 502);
      w->Apply(TaskEv("task-started", progress, 503), 503);
      w->Apply(TaskEv("task-progress", progress, 504), 504);
      ids.push_back("child-1");
      ids.push_back("prog-1");
    }
    ASSERT_TRUE(writer.Flush(10));
    EXPECT_TRUE(writer.stats().healthy);
    EXPECT_EQ(writer.stats().errors, 0u);
    EXPECT_EQ(writer.stats().rows_dropped, 0u);
    EXPECT_GT(writer.stats().batches, 0u);
    writer.Stop();
  }
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM tasks"), ids.size());
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM task_transitions WHERE task_id = '" + Uuid(0) + "'"), 4u);
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM workers"), 1u);  // w1@lab; gen1@web is only a client

  // Restart into a fresh state, bounded to the most recent 200 tasks.
  auto store = MustOpen(path);
  ASSERT_TRUE(store);
  StateOptions so;
  so.max_tasks = 200;
  SharedState restored(so);
  auto summary = RestoreState(*store, restored, so.max_tasks);
  ASSERT_TRUE(summary.ok()) << summary.error();
  EXPECT_GE(summary->tasks, 200u);
  auto a = live.Read();
  auto b = restored.Read();
  EXPECT_EQ(b->task_count(), 200u);
  // Same tasks and same JSON as the live state for each.
  std::vector<std::string> live_order, restored_order;
  a->ForEachTaskNewestFirst([&](const Task& t) {
    live_order.push_back(t.IdString());
    return live_order.size() < 200;
  });
  b->ForEachTaskNewestFirst([&](const Task& t) {
    restored_order.push_back(t.IdString());
    return true;
  });
  ASSERT_EQ(restored_order.size(), 200u);
  for (const auto& id : restored_order) {
    const Task* lt = a->FindTask(id);
    const Task* rt = b->FindTask(id);
    ASSERT_TRUE(lt && rt) << id;
    JsonWriter jl, jr;
    WriteTaskJson(*a, *lt, jl);
    WriteTaskJson(*b, *rt, jr);
    EXPECT_EQ(jl.str(), jr.str()) << id;
  }
  // The same order as the live state: the order tasks were created in.
  EXPECT_EQ(restored_order, live_order);
  const Task* child = b->FindTask("child-1");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(b->StateName(*child), "RECEIVED");
  const Task* progress = b->FindTask("prog-1");
  ASSERT_NE(progress, nullptr);
  EXPECT_EQ(b->StateName(*progress), "PROGRESS");
  // Workers come back offline-until-heard-from (their last heartbeat is long past).
  const Worker* w1 = b->FindWorker("w1@lab");
  ASSERT_NE(w1, nullptr);
  EXPECT_EQ(w1->sw_ver, "5.2.6");
  EXPECT_FALSE(b->IsAlive(*w1, 1e9));
  EXPECT_EQ(summary->workers, 1u);
}

// A read-only database: writes fail and are counted, the writer keeps the batch and stays up, the
// rows are still there for a later retry, and Stop() gives up after stop_timeout.
TEST(StoreWriterTest, ReadOnlyDatabaseCountsErrorsWithoutCrashing) {
  TempDir dir;
  const std::string path = dir.File("ro.db");
  ASSERT_TRUE(MustOpen(path));  // created and migrated
  StoreWriter writer(WriterOptions("file:" + path + "?mode=ro"));
  ASSERT_TRUE(writer.Open().ok());  // a current schema opens read-only fine
  writer.Start();
  ClusterState st;
  st.AddListener(&writer);
  RunTask(st, Uuid(1), 100);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (writer.stats().errors < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(writer.stats().errors, 3u);  // retried, not dropped
  EXPECT_FALSE(writer.stats().healthy);
  EXPECT_EQ(writer.stats().tasks_committed, 0u);
  EXPECT_GT(writer.stats().queue_bytes, 0u);  // the batch is held for the retry
  auto problem = StoreProblem(writer);
  ASSERT_TRUE(problem.has_value());
  EXPECT_NE(problem->find("readonly"), std::string::npos) << *problem;
  std::string metrics;
  AppendStoreMetrics(writer, false, metrics);
  EXPECT_NE(metrics.find("stalk_store_up 0\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("stalk_store_errors_total "), std::string::npos) << metrics;
  const auto t0 = std::chrono::steady_clock::now();
  writer.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(SqliteCount(path, "SELECT COUNT(*) FROM tasks"), 0u);
}

// A Store that delegates to SQLite but fails on demand: `transient` next writes fail as a database
// outage would; any batch holding task `refused_id` fails as invalid data would.
class FaultyStore final : public Store {
 public:
  explicit FaultyStore(std::unique_ptr<Store> inner) : inner_(std::move(inner)) {}
  std::atomic<int> transient{0};
  std::string refused_id;
  std::atomic<int> reconnects{0};

  std::string_view backend() const override { return "faulty"; }
  std::string Describe() const override { return "faulty"; }
  Result<bool> Write(const WriteBatch& b) override {
    permanent_ = false;
    if (transient > 0) {
      --transient;
      return Error{"injected outage"};
    }
    for (const auto& t : b.tasks) {
      if (t.id == refused_id) {
        permanent_ = true;
        return Error{"injected invalid row"};
      }
    }
    return inner_->Write(b);
  }
  bool LastWriteErrorIsPermanent() const override { return permanent_; }
  Result<bool> Reconnect() override {
    ++reconnects;
    return true;
  }
  Result<RetentionStep> DeleteOlderThan(double c, size_t n) override { return inner_->DeleteOlderThan(c, n); }
  Result<std::optional<double>> NthNewestTimestamp(size_t n) override { return inner_->NthNewestTimestamp(n); }
  Result<size_t> ForEachRecentTask(size_t n, const std::function<void(std::vector<TaskRecord>&)>& fn) override {
    return inner_->ForEachRecentTask(n, fn);
  }
  Result<std::vector<WorkerRecord>> LoadWorkers() override { return inner_->LoadWorkers(); }
  Result<std::optional<TaskRecord>> LoadTask(std::string_view id) override { return inner_->LoadTask(id); }
  Result<std::vector<TaskRecord>> SearchTasks(const TaskSearch& q) override { return inner_->SearchTasks(q); }
  Result<std::vector<std::string>> LoadChildren(std::string_view id) override { return inner_->LoadChildren(id); }
  Result<std::vector<TransitionRecord>> LoadTransitions(std::string_view id) override {
    return inner_->LoadTransitions(id);
  }
  Result<size_t> CountTasks() override { return inner_->CountTasks(); }
  Result<bool> AppendAudit(const std::vector<AuditEntry>& e) override { return inner_->AppendAudit(e); }
  Result<std::vector<AuditEntry>> LoadAudit(size_t limit) override { return inner_->LoadAudit(limit); }
  Result<int> SchemaVersion() override { return inner_->SchemaVersion(); }

 private:
  std::unique_ptr<Store> inner_;
  bool permanent_ = false;
};

TEST(StoreWriterTest, TransientErrorsAreRetriedWithoutLosingRows) {
  TempDir dir;
  auto faulty = std::make_shared<FaultyStore>(MustOpen(dir.File("f.db")));
  faulty->transient = 4;
  StoreWriter writer(WriterOptions(dir.File("unused.db")));
  writer.UseStore(faulty);
  writer.Start();
  ClusterState st;
  st.AddListener(&writer);
  for (int i = 0; i < 20; ++i) {
    RunTask(st, Uuid(i), 100 + i);
  }
  ASSERT_TRUE(writer.Flush(10));
  EXPECT_EQ(writer.stats().errors, 4u);
  EXPECT_GE(faulty->reconnects, 4);
  EXPECT_TRUE(writer.stats().healthy);
  EXPECT_EQ(writer.stats().rows_dropped, 0u);
  EXPECT_EQ(*faulty->CountTasks(), 20u);
  EXPECT_EQ(StoreProblem(writer), std::nullopt);
}

TEST(StoreWriterTest, RefusedRowsAreIsolatedAndSkipped) {
  TempDir dir;
  auto faulty = std::make_shared<FaultyStore>(MustOpen(dir.File("p.db")));
  faulty->refused_id = Uuid(13);
  StoreWriterOptions o = WriterOptions(dir.File("unused.db"));
  o.flush_interval = 0.5;  // one batch for all rows
  StoreWriter writer(o);
  writer.UseStore(faulty);
  ClusterState st;
  st.AddListener(&writer);
  for (int i = 0; i < 40; ++i) {
    RunTask(st, Uuid(i), 100 + i);
  }
  writer.Start();
  ASSERT_TRUE(writer.Flush(10));
  EXPECT_EQ(writer.stats().rows_rejected, 1u);
  EXPECT_EQ(*faulty->CountTasks(), 39u);
  EXPECT_FALSE(faulty->LoadTask(Uuid(13))->has_value());
  EXPECT_TRUE(faulty->LoadTask(Uuid(14))->has_value());
}

TEST(StoreWriterTest, FullQueueDropsAndCountsWithoutBlocking) {
  TempDir dir;
  StoreWriterOptions o = WriterOptions(dir.File("q.db"));
  o.queue_bytes = 4096;  // a handful of rows
  StoreWriter writer(o);
  ASSERT_TRUE(writer.Open().ok());
  ClusterState st;
  st.AddListener(&writer);  // not started: nothing drains the queue
  for (int i = 0; i < 100; ++i) {
    RunTask(st, Uuid(i), 100 + i);
  }
  EXPECT_GT(writer.stats().rows_dropped, 300u);
  EXPECT_GT(writer.stats().rows_queued, 0u);
  EXPECT_EQ(writer.stats().rows_queued + writer.stats().rows_dropped, 400u);
}

TEST(StoreWriterTest, RetentionByAgeAndCount) {
  TempDir dir;
  const std::string path = dir.File("ret.db");
  {
    auto store = MustOpen(path);
    ASSERT_TRUE(store);
    WriteBatch b;
    const double now = UnixSeconds();
    for (int i = 0; i < 30; ++i) {
      b.tasks.push_back(Record(Uuid(i), now - 7200 + i));  // two hours old
    }
    for (int i = 30; i < 60; ++i) {
      b.tasks.push_back(Record(Uuid(i), now - 60 + i - 30));  // a minute old
    }
    ASSERT_TRUE(store->Write(b).ok());
  }
  auto run = [&](double age, size_t max_count, size_t expect_left) {
    StoreWriterOptions o = WriterOptions(path);
    o.retention_age = age;
    o.max_stored_tasks = max_count;
    o.retention_interval = 0;  // first round right after start
    o.retention_step_rows = 7;
    StoreWriter writer(o);
    ASSERT_TRUE(writer.Open().ok());
    writer.Start();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (*writer.store()->CountTasks() != expect_left && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    writer.Stop();
    EXPECT_EQ(*writer.store()->CountTasks(), expect_left);
    EXPECT_EQ(writer.stats().errors, 0u) << writer.stats().LastError();
  };
  run(/*age=*/3600, 0, 30);  // the two-hour-old ones go
  EXPECT_FALSE(MustOpen(path)->LoadTask(Uuid(29))->has_value());
  run(0, /*max_count=*/10, 10);  // the newest 10 stay
  auto store = MustOpen(path);
  EXPECT_TRUE(store->LoadTask(Uuid(59))->has_value());
  EXPECT_TRUE(store->LoadTask(Uuid(50))->has_value());
  EXPECT_FALSE(store->LoadTask(Uuid(49))->has_value());
}

TEST(StoreReport, MetricsGoBeforeOpenMetricsEof) {
  TempDir dir;
  StoreWriter writer(WriterOptions(dir.File("m.db")));
  ASSERT_TRUE(writer.Open().ok());
  std::string om = "# TYPE x gauge\nx 1\n# EOF\n";
  AppendStoreMetrics(writer, true, om);
  EXPECT_TRUE(om.ends_with("\n# EOF\n")) << om;
  EXPECT_EQ(om.find("# EOF"), om.size() - 6) << om;
  EXPECT_NE(om.find("# TYPE stalk_store_rows_written counter"), std::string::npos) << om;
  EXPECT_NE(om.find("stalk_store_up 1"), std::string::npos) << om;
  std::string text;
  AppendStoreMetrics(writer, false, text);
  EXPECT_NE(text.find("# TYPE stalk_store_rows_written_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("stalk_store_rows_written_total{table=\"tasks\"} 0"), std::string::npos) << text;
  JsonWriter w;
  w.BeginObject();
  WriteStoreStats(writer, w);
  w.EndObject();
  const json j = json::parse(w.str());
  EXPECT_EQ(j["store"]["backend"], "sqlite");
  EXPECT_EQ(j["store"]["ok"], true);
  EXPECT_EQ(j["store"]["rows_committed"], 0);
}

TEST(StoreReport, StoredTaskJsonServesEvictedTasks) {
  TempDir dir;
  StoreWriter writer(WriterOptions(dir.File("e.db")));
  ASSERT_TRUE(writer.Open().ok());
  WriteBatch b;
  b.tasks = {Record(Uuid(1), 100), Record(Uuid(2), 101)};
  b.tasks[1].parent_id = Uuid(1);
  ASSERT_TRUE(writer.store()->Write(b).ok());
  auto j = StoredTaskJson(writer, Uuid(1));
  ASSERT_TRUE(j.has_value());
  const json parsed = json::parse(*j);
  EXPECT_EQ(parsed["task-id"], Uuid(1));
  EXPECT_EQ(parsed["state"], "SUCCESS");
  EXPECT_EQ(parsed["children"], json::array({Uuid(2)}));
  EXPECT_EQ(StoredTaskJson(writer, "unknown"), std::nullopt);
}

// ------------------------------------------------------------------ PostgreSQL (optional)

// Runs when STALK_TEST_PG_URL names a scratch database (the integration tests start a private server
// and cover PostgreSQL end to end; this checks the backend on its own).
TEST(PostgresStoreTest, WriteReadRetentionAndSharedMerge) {
  const char* url = std::getenv("STALK_TEST_PG_URL");
  if (!url || !*url) {
    GTEST_SKIP() << "STALK_TEST_PG_URL not set";
  }
  auto store = MustOpen(url);
  ASSERT_TRUE(store);
  EXPECT_EQ(store->backend(), "postgresql");
  EXPECT_EQ(*store->SchemaVersion(), kSchemaVersion);
  const std::string prefix = "pgtest-" + std::to_string(getpid()) + "-";
  WriteBatch b;
  for (int i = 0; i < 20; ++i) {
    b.tasks.push_back(Record(prefix + std::to_string(i), 1000 + i));
  }
  b.tasks[0].kwargs = std::string("{'x': 'tab\there\nnew \\ \xff bad ") + '\0' + "'}";
  b.transitions.push_back({b.tasks[1].id, "SUCCESS", 1001});
  b.transitions.push_back({b.tasks[1].id, "SUCCESS", 1001});
  ASSERT_TRUE(store->Write(b).ok());
  ASSERT_TRUE(store->Write(b).ok());  // idempotent
  auto got = store->LoadTask(b.tasks[3].id);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(Json(**got), Json(b.tasks[3]));
  auto odd = store->LoadTask(b.tasks[0].id);
  ASSERT_TRUE(odd.ok() && odd->has_value());
  EXPECT_EQ(*(*odd)->kwargs, "{'x': 'tab\there\nnew \\ \xEF\xBF\xBD bad \xEF\xBF\xBD'}");
  EXPECT_EQ(store->LoadTransitions(b.tasks[1].id)->size(), 1u);
  // Shared merge: an older record never overwrites a newer one, and known fields are kept.
  TaskRecord stale = b.tasks[2];
  stale.state = "STARTED";
  stale.timestamp -= 10;
  stale.result.reset();
  WriteBatch s;
  s.tasks = {stale};
  ASSERT_TRUE(store->Write(s).ok());
  EXPECT_EQ((*store->LoadTask(stale.id))->state, "SUCCESS");
  TaskRecord newer = b.tasks[2];
  newer.state = "REVOKED";
  newer.timestamp += 10;
  newer.result.reset();
  s.tasks = {newer};
  ASSERT_TRUE(store->Write(s).ok());
  EXPECT_EQ((*store->LoadTask(newer.id))->state, "REVOKED");
  EXPECT_EQ((*store->LoadTask(newer.id))->result, "5");
  std::vector<double> stamps;
  ASSERT_TRUE(store
                  ->ForEachRecentTask(0,
                                      [&](std::vector<TaskRecord>& chunk) {
                                        for (auto& r : chunk) {
                                          if (r.id.starts_with(prefix))
                                            stamps.push_back(r.timestamp);
                                        }
                                      })
                  .ok());
  EXPECT_EQ(stamps.size(), 20u);
  EXPECT_TRUE(std::is_sorted(stamps.begin(), stamps.end()));  // PostgreSQL: by timestamp
  auto step = store->DeleteOlderThan(1010, 1000);
  ASSERT_TRUE(step.ok()) << step.error();
  EXPECT_FALSE(store->LoadTask(b.tasks[9].id)->has_value());
  EXPECT_TRUE(store->LoadTask(b.tasks[10].id)->has_value());
  ASSERT_TRUE(store->DeleteOlderThan(2000, 1000).ok());
}

// ------------------------------------------------------------------ schema 3: silences, cost rollup

// Silences and the cost rollup through one backend, then reopened (the restart a silence survives).
void CheckSilencesAndRollup(const std::string& url, const std::string& prefix) {
  {
    auto store = MustOpen(url);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->SaveSilence({prefix + "s1", R"({"alertname":"Backlog"})", 100, 200, "ops", "deploy"}).ok());
    ASSERT_TRUE(store->SaveSilence({prefix + "s2", R"({"queue":"a*"})", 100, 300, "", ""}).ok());
    ASSERT_TRUE(store->SaveSilence({prefix + "s2", R"({"queue":"b*"})", 100, 400, "", "replaced"}).ok());
    ASSERT_TRUE(store->DeleteSilence(prefix + "s1").ok());
    // Two batches add to the same hour: sums, counts, and the span of finishes widen.
    const double hour = 3600.0 * 1000;
    auto task = [&](const std::string& id, double h, double seconds, int64_t estimated, double at) {
      return FinishedTaskCost{prefix + id, {h, prefix + "app.a", "celery", "w1", seconds, 1, estimated, at, at}};
    };
    ASSERT_TRUE(store
                    ->AddCostRollup({task("t1", hour, 4, 0, hour + 100), task("t2", hour, 6, 0, hour + 200),
                                     task("t0", hour - 3600, 99, 0, hour - 10)})
                    .ok());
    ASSERT_TRUE(store->AddCostRollup({task("t3", hour, 5, 1, hour + 50)}).ok());
    if (store->backend() == "postgresql") {
      // Another instance reporting the same tasks adds nothing (shared history).
      ASSERT_TRUE(store->AddCostRollup({task("t1", hour, 4, 0, hour + 100), task("t3", hour, 5, 1, hour + 50)}).ok());
    }
  }
  auto store = MustOpen(url);
  ASSERT_TRUE(store);
  auto silences = store->LoadSilences();
  ASSERT_TRUE(silences.ok()) << silences.error();
  std::vector<SilenceRecord> mine;
  for (auto& s : *silences) {
    if (s.id.starts_with(prefix))
      mine.push_back(s);
  }
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0].matchers_json, R"({"queue":"b*"})");
  EXPECT_DOUBLE_EQ(mine[0].ends_at, 400);
  EXPECT_EQ(mine[0].comment, "replaced");
  const double hour = 3600.0 * 1000;
  auto rows = store->LoadCostRollup(hour + 60);  // the hour before ended before `since`: not returned
  ASSERT_TRUE(rows.ok()) << rows.error();
  std::vector<CostRollupRow> got;
  for (auto& r : *rows) {
    if (r.name.starts_with(prefix))
      got.push_back(r);
  }
  ASSERT_EQ(got.size(), 1u);
  EXPECT_DOUBLE_EQ(got[0].worker_seconds, 15);
  EXPECT_EQ(got[0].runs, 3);
  EXPECT_EQ(got[0].estimated, 1);
  EXPECT_DOUBLE_EQ(got[0].first_at, hour + 50);
  EXPECT_DOUBLE_EQ(got[0].last_at, hour + 200);
  auto wider = store->LoadCostRollup(hour - 3000);
  ASSERT_TRUE(wider.ok()) << wider.error();
  EXPECT_EQ(wider->size() - rows->size(), 1u);
  ASSERT_TRUE(store->DeleteCostRollupBefore(hour + 1, 0).ok());
  auto after = store->LoadCostRollup(0);
  ASSERT_TRUE(after.ok()) << after.error();
  for (const auto& r : *after) {
    EXPECT_FALSE(r.name.starts_with(prefix) && r.hour < hour) << "retention keeps an hour that ended";
  }
}

TEST(SqliteStoreTest, SilencesAndCostRollupSurviveReopen) {
  TempDir dir;
  CheckSilencesAndRollup(dir.File("v3.db"), "");
}

TEST(PostgresStoreTest, SilencesAndCostRollupSurviveReopen) {
  const char* url = std::getenv("STALK_TEST_PG_URL");
  if (!url || !*url) {
    GTEST_SKIP() << "STALK_TEST_PG_URL not set";
  }
  CheckSilencesAndRollup(url, "pg3-" + std::to_string(getpid()) + "-");
}

TEST(CostRollupTest, CountsEachFinishedTaskOnceFromTheBatch) {
  WriteBatch b;
  b.tasks = {Record("a", 7200 + 10), Record("b", 7200 + 20), Record("c", 7200 + 30), Record("d", 7200 + 40, "STARTED")};
  b.tasks[1].runtime = -1;  // no runtime: started -> finished, estimated
  b.tasks[2].worker = "w2@lab";
  b.transitions = {{"a", "SUCCESS", 7210}, {"b", "SUCCESS", 7220}, {"d", "STARTED", 7240}};
  // "c" is finished but its transition was in an earlier batch: not counted again.
  const auto tasks = CostRollup::TasksOf(b);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].task_id, "a");
  EXPECT_EQ(tasks[1].task_id, "b");
  const auto rows = AggregateCost({&tasks[0], &tasks[1]});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_DOUBLE_EQ(rows[0].hour, 7200);
  EXPECT_EQ(rows[0].name, "app.add");
  EXPECT_EQ(rows[0].worker, "w1@lab");
  EXPECT_EQ(rows[0].runs, 2);
  EXPECT_EQ(rows[0].estimated, 1);
  EXPECT_NEAR(rows[0].worker_seconds, 0.8, 1e-9);
  EXPECT_DOUBLE_EQ(rows[0].first_at, 7210);
  EXPECT_DOUBLE_EQ(rows[0].last_at, 7220);
}

TEST(CostRollupTest, WindowCountsTheShareOfACutHour) {
  CostRollupRow r;
  r.first_at = 100;
  r.last_at = 200;
  EXPECT_DOUBLE_EQ(CostRowShare(r, 50), 1);
  EXPECT_DOUBLE_EQ(CostRowShare(r, 150), 0.5);
  EXPECT_DOUBLE_EQ(CostRowShare(r, 250), 0);
  r.first_at = r.last_at = 120;
  EXPECT_DOUBLE_EQ(CostRowShare(r, 120), 1);
}

TEST(StoreWriterTest, CostRollupAndSubmittedWritesGoThroughTheWriterThread) {
  TempDir dir;
  StoreWriterOptions o;
  o.config.url = dir.File("w.db");
  o.flush_interval = 0.01;
  StoreWriter writer(o);
  ASSERT_TRUE(writer.Open().ok());
  writer.Start();
  writer.Submit([](Store& s) { return s.SaveSilence({"x1", R"({"alertname":"A"})", 1, 2, "", ""}); });
  SharedState state(StateOptions{});
  const double now = UnixSeconds();
  {
    auto w = state.Write();
    w->AddListener(&writer);
    RunTask(*w, "t1", now, "app.sleep");  // runtime 0.1 s
  }
  ASSERT_TRUE(writer.Flush(10));
  writer.Stop();
  auto store = MustOpen(o.config.url);
  auto rows = store->LoadCostRollup(now - 10);
  ASSERT_TRUE(rows.ok()) << rows.error();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].name, "app.sleep");
  EXPECT_EQ((*rows)[0].queue, "celery");
  EXPECT_DOUBLE_EQ((*rows)[0].worker_seconds, 0.1);
  ASSERT_EQ(store->LoadSilences()->size(), 1u);
}

}  // namespace
}  // namespace stalk
