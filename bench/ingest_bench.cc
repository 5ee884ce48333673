// Stalk — Celery monitoring server.
// ingest_bench: the core's figures (issue "Core"), printed, never asserted.
//   ingest_bench throughput [tasks]   decode + apply on one core over a synthetic stream (>= 1M events)
//   ingest_bench memory [tasks]       RSS with N tracked tasks (default 1,000,000), then /api/tasks-style
//                                     query latencies (query + JSON rendering, as the HTTP handler does)
// Method: median of 5 runs after one warm-up for throughput; 200 repetitions per query for p50/p99.
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/json_writer.h"
#include "ingest/ingest_pipeline.h"
#include "state/task_json.h"
#include "state/task_query.h"
#include "synthetic_stream.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

double RssMiB() {
  long total = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &total, &resident) != 2)
      resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

int Throughput(size_t tasks) {
  bench::StreamOptions so;
  so.tasks = tasks;
  auto stream = bench::MakeStream(so);
  size_t bytes = 0;
  for (auto& m : stream.messages)
    bytes += m.payload.size();
  std::printf("stream: %zu tasks, %zu messages, %zu events, %.1f MiB of envelopes\n", tasks, stream.messages.size(),
              stream.events, static_cast<double>(bytes) / (1 << 20));
  std::vector<double> rates;
  for (int run = 0; run < 6; ++run) {
    StateOptions opt;
    opt.max_tasks = 1000000;
    SharedState state(opt);
    IngestStats stats;
    IngestQueue q(1, stats);
    IngestPipeline p(state, q, stats);
    const auto t0 = Clock::now();
    const size_t ev = bench::ApplyAll(p, stream.messages);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run > 0)
      rates.push_back(static_cast<double>(ev) / s);  // run 0 is the warm-up
    uint64_t rejected = 0;
    for (auto& r : stats.rejected)
      rejected += r.load();
    if (rejected)
      std::printf("unexpected rejects: %llu\n", static_cast<unsigned long long>(rejected));
  }
  std::sort(rates.begin(), rates.end());
  std::printf("cold (state filling from empty): median %.0f events/s (min %.0f, max %.0f) over %zu runs\n",
              rates[rates.size() / 2], rates.front(), rates.back(), rates.size());

  // Warm: the state is already full (max_tasks reached), every new task evicts the oldest — the
  // steady state of a long-running Stalk. Same stream, a second set of task ids.
  bench::StreamOptions so2 = so;
  so2.seed = so.seed + 1;
  so2.start_time = so.start_time + static_cast<double>(tasks) / so.tasks_per_second;
  auto stream2 = bench::MakeStream(so2);
  std::vector<double> warm;
  for (int run = 0; run < 6; ++run) {
    StateOptions opt;
    opt.max_tasks = tasks;
    SharedState state(opt);
    IngestStats stats;
    IngestQueue q(1, stats);
    IngestPipeline p(state, q, stats);
    bench::ApplyAll(p, (run % 2) ? stream2.messages : stream.messages);
    auto& next = (run % 2) ? stream.messages : stream2.messages;
    const auto t0 = Clock::now();
    const size_t ev = bench::ApplyAll(p, next);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run > 0)
      warm.push_back(static_cast<double>(ev) / s);
  }
  std::sort(warm.begin(), warm.end());
  std::printf("warm (state full, evicting the oldest): median %.0f events/s (min %.0f, max %.0f) over %zu runs\n",
              warm[warm.size() / 2], warm.front(), warm.back(), warm.size());
  return 0;
}

struct NamedQuery {
  const char* label;
  TaskQuery q;
};

int Memory(size_t tasks) {
  const double base = RssMiB();
  StateOptions opt;
  opt.max_tasks = tasks;
  SharedState state(opt);
  IngestStats stats;
  IngestQueue q(1, stats);
  IngestPipeline p(state, q, stats);
  const size_t chunk = 2000;  // small, so the generated envelopes barely count in RSS
  size_t events = 0;
  for (size_t done = 0; done < tasks; done += chunk) {
    bench::StreamOptions so;
    so.tasks = std::min(chunk, tasks - done);
    so.seed = 1000 + done;
    so.start_time = 1795655136.0 + static_cast<double>(done) / so.tasks_per_second;
    auto stream = bench::MakeStream(so);
    events += bench::ApplyAll(p, stream.messages);
  }
  const double rss = RssMiB();
  {
    auto st = state.Read();
    std::printf(
        "tracked %zu tasks (%zu events applied): RSS %.1f MiB, %.1f MiB over the empty process "
        "(%.0f bytes/task)\n",
        st->task_count(), events, rss, rss - base, (rss - base) * (1 << 20) / static_cast<double>(st->task_count()));
  }
  std::vector<NamedQuery> queries = {
      {"default order, limit 100", TaskQuery{.limit = 100}},
      {"state=FAILURE, limit 100", TaskQuery{.limit = 100, .state = "FAILURE"}},
      {"taskname, limit 100", TaskQuery{.limit = 100, .taskname = "proj.billing.charge_card"}},
      {"workername+state, limit 100",
       TaskQuery{.limit = 100, .workername = "celery@worker-007.prod.example.com", .state = "SUCCESS"}},
      {"rare: state=RETRY+taskname", TaskQuery{.limit = 100, .taskname = "proj.notify.push", .state = "FAILURE"}},
      {"sort_by=-received, limit 100", TaskQuery{.limit = 100, .sort_by = "-received"}},
      {"sort_by=name, offset 5000", TaskQuery{.limit = 100, .offset = 5000, .sort_by = "name"}},
      {"search=tenant (free text)", TaskQuery{.limit = 100, .search = "acme"}},
      {"search no match (full scan)", TaskQuery{.limit = 100, .search = "nomatch-xyz"}},
  };
  std::printf("%-32s %10s %10s %8s\n", "query (incl. JSON render)", "p50 ms", "p99 ms", "bytes");
  for (auto& nq : queries) {
    std::vector<double> ms;
    size_t out_bytes = 0;
    for (int i = 0; i < 200; ++i) {
      const auto t0 = Clock::now();
      auto st = state.Read();
      auto r = RunTaskQuery(*st, nq.q);
      JsonWriter w;
      w.BeginObject();
      for (const Task* t : *r) {
        w.Key(t->IdString());
        WriteTaskJson(*st, *t, w);
      }
      w.EndObject();
      out_bytes = w.str().size();
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%-32s %10.2f %10.2f %8zu\n", nq.label, ms[ms.size() / 2], ms[ms.size() * 99 / 100], out_bytes);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "throughput";
  if (mode == "throughput")
    return Throughput(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 250000);
  if (mode == "memory")
    return Memory(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 1000000);
  std::fprintf(stderr, "usage: ingest_bench throughput|memory [tasks]\n");
  return 2;
}
