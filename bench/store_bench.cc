// Stalk — Celery monitoring server.
// store_bench: durable history figures (issue "durable task history"), printed, never asserted.
//   store_bench write [tasks=100000]     the full path — ingest (decode + apply) with StoreWriter attached,
//                                         until every row is committed — on a synthetic Celery stream:
//                                         ingest events/s with and without the store, sustained store
//                                         rate (tasks/s, events/s), rows per commit, backlog high water;
//                                         then raw Store::Write upserts/s of new and of existing tasks
//   store_bench restore [tasks=1000000]   writes N stored tasks, then times RestoreState (what `stalk
//                                         serve` does before serving) into a state of max_tasks = N
// SQLite in a fresh file under $TMPDIR (or /tmp). PostgreSQL too when STALK_BENCH_PG_URL names a
// scratch database (tables are dropped and recreated). Method: median of 3 runs after one warm-up
// where a run is short; single runs for the 1M-task figures. Machine: see bench/README.md.
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "ingest/ingest_pipeline.h"
#include "state/shared_state.h"
#include "store/history_loader.h"
#include "store/row_codec.h"
#include "store/store.h"
#include "store/store_writer.h"
#include "synthetic_stream.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

double Since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of the calling thread (the machine is shared: wall time includes waiting for a core).
double ThreadCpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double RssMiB() {
  long total = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &total, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

struct Target {
  std::string label;
  std::string url;
};

std::vector<Target> Targets(const std::string& tag) {
  const std::string dir = std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp";
  const std::string path = dir + "/stalk-store-bench-" + tag + "-" + std::to_string(getpid()) + ".db";
  std::vector<Target> out = {{"sqlite", path}};
  if (const char* pg = std::getenv("STALK_BENCH_PG_URL"); pg && *pg) {
    out.push_back({"postgresql", pg});
  }
  return out;
}

void Reset(const Target& t) {
  if (IsPostgresUrl(t.url)) {
    // Drop the tables through a throwaway psql, so each run starts empty.
    const std::string cmd = "psql -q '" + t.url +
                            "' -c 'DROP TABLE IF EXISTS tasks, task_transitions, workers, events, schema_version' "
                            ">/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "cannot reset %s (is psql installed?)\n", t.label.c_str());
    }
    return;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(t.url + suffix);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// A Store that accepts everything and keeps nothing: the cost of the pipeline around the database.
class NullStore final : public Store {
 public:
  std::string_view backend() const override { return "null"; }
  std::string Describe() const override { return "null"; }
  Result<bool> Write(const WriteBatch&) override { return true; }
  Result<bool> Reconnect() override { return true; }
  Result<RetentionStep> DeleteOlderThan(double, size_t) override { return RetentionStep{}; }
  Result<std::optional<double>> NthNewestTimestamp(size_t) override { return std::optional<double>(); }
  Result<size_t> ForEachRecentTask(size_t, const std::function<void(std::vector<TaskRecord>&)>&) override {
    return size_t{0};
  }
  Result<std::vector<WorkerRecord>> LoadWorkers() override { return std::vector<WorkerRecord>{}; }
  Result<std::optional<TaskRecord>> LoadTask(std::string_view) override { return std::optional<TaskRecord>(); }
  Result<std::vector<TaskRecord>> SearchTasks(const TaskSearch&) override { return std::vector<TaskRecord>{}; }
  Result<std::vector<std::string>> LoadChildren(std::string_view) override { return std::vector<std::string>{}; }
  Result<std::vector<TransitionRecord>> LoadTransitions(std::string_view) override {
    return std::vector<TransitionRecord>{};
  }
  Result<size_t> CountTasks() override { return size_t{0}; }
  Result<bool> AppendAudit(const std::vector<AuditEntry>& /*entries*/) override { return true; }
  Result<std::vector<AuditEntry>> LoadAudit(size_t /*limit*/) override { return std::vector<AuditEntry>{}; }
  Result<int> SchemaVersion() override { return 1; }
};

TaskRecord Synthetic(size_t i, double ts) {
  static const char* kNames[] = {"proj.billing.charge_card", "proj.notify.push", "proj.reports.render",
                                 "proj.search.index", "proj.mail.send"};
  char id[40];
  std::snprintf(id, sizeof id, "%08zx-%04zx-4%03zx-8%03zx-%012zx", i * 2654435761u % 0xffffffffu, i % 0xffff, i % 0xfff,
                (i / 7) % 0xfff, i);
  TaskRecord r;
  r.id = id;
  r.name = kNames[i % 5];
  r.state = i % 10 == 0 ? "FAILURE" : "SUCCESS";
  r.worker = "celery@worker-" + std::to_string(i % 50) + ".prod.example.com";
  r.client = "gen" + std::to_string(i % 7) + "@web-1";
  r.queue = "celery";
  r.exchange = "";
  r.routing_key = "celery";
  r.sent = ts - 0.3;
  r.received = ts - 0.2;
  r.started = ts - 0.1;
  (i % 10 == 0 ? r.failed : r.succeeded) = ts;
  r.timestamp = ts;
  r.runtime = 0.1;
  r.retries = 0;
  r.clock = static_cast<int64_t>(i);
  r.args = "(" + std::to_string(i) + ", 'acme')";
  r.kwargs = i % 4 == 0 ? "{'tenant': 'acme', 'priority': 3}" : "{}";
  if (i % 10 == 0) {
    r.exception = "ValueError('card declined')";
    r.traceback =
        "Traceback (most recent call last):\n  File \"/app/proj/billing.py\", line 42, in charge_card\n"
        "    raise ValueError('card declined')\nValueError: card declined\n";
  } else {
    r.result = "{'ok': True, 'id': " + std::to_string(i) + "}";
  }
  r.root_id = r.id;
  r.has_state_event = true;
  return r;
}

// Store::Write of N tasks (with 4 transitions each) in batches of `batch` rows: tasks/s.
double RawWriteRate(Store& store, size_t tasks, size_t batch, size_t first_id) {
  const auto t0 = Clock::now();
  for (size_t done = 0; done < tasks; done += batch) {
    WriteBatch b;
    b.written_at = 1795655136.0;
    for (size_t i = done; i < std::min(tasks, done + batch); ++i) {
      b.tasks.push_back(Synthetic(first_id + i, 1795655136.0 + static_cast<double>(i) / 1000));
      for (const char* s : {"PENDING", "RECEIVED", "STARTED", "SUCCESS"}) {
        b.transitions.push_back({b.tasks.back().id, s, b.tasks.back().timestamp});
      }
    }
    std::sort(b.tasks.begin(), b.tasks.end(), [](auto& a, auto& c) { return a.id < c.id; });
    if (auto r = store.Write(b); !r) {
      std::fprintf(stderr, "write failed: %s\n", r.error().c_str());
      return 0;
    }
  }
  return static_cast<double>(tasks) / Since(t0);
}

double ProcessCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

// One pass of the stream through ingest (this thread) with an optional StoreWriter (its thread).
struct PathRun {
  size_t events = 0;
  double ingest_wall = 0, ingest_cpu = 0;  // applying the stream
  double total_wall = 0;                   // until the store committed everything
  double store_cpu = 0;                    // the process's other threads: the store thread
  uint64_t tasks_committed = 0, batches = 0, dropped = 0;
  double high_water_mib = 0;
};

PathRun RunPath(std::vector<RawMessage>& msgs, size_t tasks, std::shared_ptr<Store> store, size_t batch_rows) {
  PathRun out;
  StateOptions opt;
  opt.max_tasks = tasks;
  SharedState state(opt);
  IngestStats stats;
  IngestQueue q(1, stats);
  IngestPipeline p(state, q, stats);
  std::unique_ptr<StoreWriter> writer;
  if (store) {
    StoreWriterOptions o;
    o.config.url = "unused";
    o.batch_rows = batch_rows;
    writer = std::make_unique<StoreWriter>(o);
    writer->UseStore(std::move(store));
    state.Write()->AddListener(writer.get());
    writer->Start();
  }
  const double p0 = ProcessCpu(), c0 = ThreadCpu();
  const auto t0 = Clock::now();
  out.events = bench::ApplyAll(p, msgs);
  out.ingest_wall = Since(t0);
  out.ingest_cpu = ThreadCpu() - c0;
  if (writer) {
    writer->Flush(600);
    out.total_wall = Since(t0);
    out.store_cpu = ProcessCpu() - p0 - (ThreadCpu() - c0);
    writer->Stop();
    const StoreStats& s = writer->stats();
    out.tasks_committed = s.tasks_committed.load();
    out.batches = s.batches.load();
    out.dropped = s.rows_dropped.load();
    out.high_water_mib = static_cast<double>(s.queue_high_water_bytes.load()) / (1 << 20);
  }
  return out;
}

// Medians over runs 1..n-1 (run 0 warms up).
template <typename Fn>
double MedianOf(const std::vector<PathRun>& runs, Fn fn) {
  std::vector<double> v;
  for (size_t i = 1; i < runs.size(); ++i)
    v.push_back(fn(runs[i]));
  return Median(v);
}

int Write(size_t tasks) {
  bench::StreamOptions so;
  so.tasks = tasks;
  auto stream = bench::MakeStream(so);
  std::printf("stream: %zu tasks, %zu messages, %zu events\n", tasks, stream.messages.size(), stream.events);
  size_t batch_rows = StoreWriterOptions{}.batch_rows;
  if (const char* b = std::getenv("STALK_BENCH_BATCH_ROWS"))
    batch_rows = std::strtoul(b, nullptr, 10);
  std::printf(
      "batch_rows %zu; rates per CPU-second of the thread doing the work, then wall clock "
      "(the machine is shared: wall clock includes waiting for a core)\n",
      batch_rows);

  std::vector<PathRun> alone, null_store;
  for (int run = 0; run < 4; ++run)
    alone.push_back(RunPath(stream.messages, tasks, nullptr, batch_rows));
  for (int run = 0; run < 4; ++run) {
    null_store.push_back(RunPath(stream.messages, tasks, std::make_shared<NullStore>(), batch_rows));
  }
  auto ev_per_cpu = [](const PathRun& r) { return static_cast<double>(r.events) / r.ingest_cpu; };
  auto ev_per_wall = [](const PathRun& r) { return static_cast<double>(r.events) / r.ingest_wall; };
  std::printf("ingest alone:                     %8.0f events/CPU-s  (%8.0f events/s wall)\n",
              MedianOf(alone, ev_per_cpu), MedianOf(alone, ev_per_wall));
  std::printf(
      "ingest + store, null database:    %8.0f events/CPU-s  (%8.0f events/s wall); store thread "
      "%.0f events/CPU-s (decode, coalesce)\n",
      MedianOf(null_store, ev_per_cpu), MedianOf(null_store, ev_per_wall),
      MedianOf(null_store, [](const PathRun& r) { return static_cast<double>(r.events) / r.store_cpu; }));
  if (std::getenv("STALK_BENCH_LISTENER_ONLY")) {
    return 0;
  }

  for (const Target& target : Targets("write")) {
    std::vector<PathRun> runs;
    for (int run = 0; run < 4; ++run) {
      Reset(target);
      auto store = OpenStore(StoreConfig{target.url});
      if (!store) {
        std::printf("%s: cannot open: %s\n", target.label.c_str(), store.error().c_str());
        break;
      }
      runs.push_back(RunPath(stream.messages, tasks, std::shared_ptr<Store>(std::move(*store)), batch_rows));
    }
    if (runs.size() < 2)
      continue;
    uint64_t dropped = 0;
    for (const auto& r : runs)
      dropped += r.dropped;
    std::printf(
        "%-10s full path: ingest %8.0f events/CPU-s; store thread %7.0f tasks/CPU-s = %8.0f events/CPU-s%s; "
        "wall: all committed at %7.0f tasks/s = %8.0f events/s; %.0f task rows/commit; backlog high "
        "water %.1f MiB; dropped %llu\n",
        target.label.c_str(), MedianOf(runs, ev_per_cpu),
        MedianOf(runs, [&](const PathRun& r) { return static_cast<double>(tasks) / r.store_cpu; }),
        MedianOf(runs, [](const PathRun& r) { return static_cast<double>(r.events) / r.store_cpu; }),
        IsPostgresUrl(target.url) ? " (client side only)" : "",
        MedianOf(runs, [&](const PathRun& r) { return static_cast<double>(tasks) / r.total_wall; }),
        MedianOf(runs, [](const PathRun& r) { return static_cast<double>(r.events) / r.total_wall; }),
        MedianOf(runs,
                 [](const PathRun& r) {
                   return static_cast<double>(r.tasks_committed) /
                          static_cast<double>(std::max<uint64_t>(1, r.batches));
                 }),
        MedianOf(runs, [](const PathRun& r) { return r.high_water_mib; }), static_cast<unsigned long long>(dropped));

    Reset(target);
    auto store = OpenStore(StoreConfig{target.url});
    if (!store) {
      std::printf("%s: %s\n", target.label.c_str(), store.error().c_str());
      continue;
    }
    std::vector<double> fresh, updates, fresh_cpu, updates_cpu;
    for (int run = 0; run < 3; ++run) {
      double c0 = ProcessCpu();
      fresh.push_back(RawWriteRate(**store, 50000, 5000, static_cast<size_t>(run) * 50000));
      fresh_cpu.push_back(50000 / (ProcessCpu() - c0));
      c0 = ProcessCpu();
      updates.push_back(RawWriteRate(**store, 50000, 5000, static_cast<size_t>(run) * 50000));
      updates_cpu.push_back(50000 / (ProcessCpu() - c0));
    }
    std::printf(
        "%-10s Store::Write, batches of 5000 tasks + 4 transitions each: new tasks %.0f tasks/CPU-s "
        "(%.0f/s wall), updates of stored tasks %.0f tasks/CPU-s (%.0f/s wall)\n",
        target.label.c_str(), Median(fresh_cpu), Median(fresh), Median(updates_cpu), Median(updates));
    Reset(target);
  }
  return 0;
}

// Per-call cost of the listener on the ingest thread, on real task records: encode alone, then
// encode + queue (a consumer thread drains into a null database).
int Listener(size_t tasks) {
  bench::StreamOptions so;
  so.tasks = tasks;
  auto stream = bench::MakeStream(so);
  StateOptions opt;
  opt.max_tasks = tasks;
  SharedState state(opt);
  IngestStats stats;
  IngestQueue q(1, stats);
  IngestPipeline p(state, q, stats);
  bench::ApplyAll(p, stream.messages);
  auto st = state.Read();
  std::vector<const Task*> all;
  st->ForEachTaskNewestFirst([&](const Task& t) {
    all.push_back(&t);
    return true;
  });
  std::string out;
  out.reserve(4096);
  size_t bytes = 0;
  auto t0 = Clock::now();
  double c0 = ThreadCpu();
  for (int rep = 0; rep < 10; ++rep) {
    for (const Task* t : all) {
      out.clear();
      EncodeTaskRow(*st, *t, true, out);
      bytes += out.size();
    }
  }
  const double n = 10.0 * static_cast<double>(all.size());
  std::printf("EncodeTaskRow: %.0f ns/row wall, %.0f ns/row CPU, %.0f bytes/row\n", Since(t0) * 1e9 / n,
              (ThreadCpu() - c0) * 1e9 / n, static_cast<double>(bytes) / n);
  StoreWriterOptions o;
  o.config.url = "unused";
  StoreWriter writer(o);
  writer.UseStore(std::make_shared<NullStore>());
  writer.Start();
  Event ev;
  ev.kind = EventKind::kTaskStarted;
  t0 = Clock::now();
  c0 = ThreadCpu();
  for (int rep = 0; rep < 10; ++rep) {
    for (const Task* t : all) {
      writer.OnTaskEvent(*st, *t, ev, TaskState::kReceived);
    }
  }
  const double s = Since(t0), cpu = ThreadCpu() - c0;
  writer.Flush(60);
  std::printf(
      "StoreWriter::OnTaskEvent (encode + queue, consumer draining): %.0f ns/event wall, %.0f ns/event "
      "CPU of the ingest thread; dropped %llu\n",
      s * 1e9 / n, cpu * 1e9 / n, static_cast<unsigned long long>(writer.stats().rows_dropped.load()));
  return 0;
}

int Restore(size_t tasks) {
  // STALK_BENCH_KEEP_DB=path: reuse (or create and keep) that SQLite file, to time restores alone.
  const char* keep = std::getenv("STALK_BENCH_KEEP_DB");
  std::vector<Target> targets = keep ? std::vector<Target>{{"sqlite", keep}} : Targets("restore");
  for (const Target& target : targets) {
    const bool reuse = keep && std::filesystem::exists(target.url);
    if (!keep)
      Reset(target);
    if (!reuse) {
      auto store = OpenStore(StoreConfig{target.url});
      if (!store) {
        std::printf("%s: %s\n", target.label.c_str(), store.error().c_str());
        continue;
      }
      const auto t0 = Clock::now();
      const double rate = RawWriteRate(**store, tasks, 20000, 0);
      std::printf("%s: wrote %zu stored tasks in %.1f s (%.0f tasks/s)\n", target.label.c_str(), tasks, Since(t0),
                  rate);
    }
    if (!IsPostgresUrl(target.url)) {
      std::printf("%s: file %.0f MiB (%.0f bytes/task)\n", target.label.c_str(),
                  static_cast<double>(std::filesystem::file_size(target.url)) / (1 << 20),
                  static_cast<double>(std::filesystem::file_size(target.url)) / static_cast<double>(tasks));
    }
    const double rss0 = RssMiB(), cpu0 = ProcessCpu();
    const auto t0 = Clock::now();
    auto store = OpenStore(StoreConfig{target.url});  // as serve does: open, migrate check, restore
    if (!store)
      continue;
    StateOptions opt;
    opt.max_tasks = tasks;
    SharedState state(opt);
    auto r = RestoreState(**store, state, tasks);
    const double s = Since(t0);
    if (!r) {
      std::printf("%s: restore failed: %s\n", target.label.c_str(), r.error().c_str());
      continue;
    }
    std::printf(
        "%s: start-up restore of %zu tasks: %.2f s (%.0f tasks/s), %.2f CPU-s (reading %.2f, applying "
        "%.2f), RSS +%.0f MiB\n",
        target.label.c_str(), r->tasks, s, static_cast<double>(r->tasks) / s, ProcessCpu() - cpu0, r->read_cpu_seconds,
        r->apply_cpu_seconds, RssMiB() - rss0);
    if (!keep)
      Reset(target);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "write";
  if (mode == "write")
    return Write(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100000);
  if (mode == "listener")
    return Listener(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 50000);
  if (mode == "restore")
    return Restore(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000000);
  std::fprintf(stderr, "usage: store_bench write|restore [tasks]\n");
  return 2;
}
