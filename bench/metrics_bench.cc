// Stalk — Celery monitoring server.
// metrics_bench: /metrics at 1,000 workers x 200 task names, printed, never asserted.
//
//   metrics_bench render [workers] [names] [names_per_worker...]   (defaults: 1000 200 200 20)
//   metrics_bench ingest [stream_tasks] [names_per_worker]         (defaults: 100000 20)
//
// The state is filled through the real listener path: each worker online, then for each of its
// task names one task sent -> received -> started -> succeeded, every 10th left executing and every
// 10th left prefetched. Both metric sets are on (the default). Layouts: "full" (every worker ran
// every task name: 200,000 (worker, task) pairs, the worst case Flower's label set allows) and
// "sharded" (each worker serves 20 of the 200 names, as with per-queue worker pools: 20,000 pairs).
//
// render: Metrics::Render with the read lock in slices (the default 0.3 ms) and in one hold (as
//   before slicing), 2 warm-up renders then 20 measured; median, min, max in ms, slices per render,
//   the longest hold, the exposition size, and the RSS after filling.
// ingest: 1,000 workers x 200 names (sharded by default), then a writer thread applies a synthetic Celery stream
//   (synthetic_stream.h) with IngestPipeline::ApplyBatch in batches of 256 messages — the ingest
//   thread's own code path — while a scraper thread renders back to back: none, sliced, or one hold.
//   Before each batch the writer times taking the write lock (a probe, released at once): how long
//   ingestion would be paused at that moment. Printed: events/s, the probe's p50/p99/max, the
//   longest ApplyBatch, the scrapes done and their median time, and the longest read-lock hold any
//   scrape reported. 3 runs per mode, the median run (by events/s) shown.
// Timing is wall clock on a shared 2-core machine: compare medians; a max can catch a neighbour.
// With STALK_BENCH_RT=1 the measured threads (renders; the writer and the scraper during ingest) run
// SCHED_FIFO, so neighbours' jobs cannot preempt them in the middle of a lock hold or a batch: the
// figures then show the design's bound rather than the machine's load. Render CPU time (the
// thread's own clock) is printed as well, as it does not count time spent preempted.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "common/ingest_stats.h"
#include "ingest/ingest_pipeline.h"
#include "metrics/metrics.h"
#include "metrics/process_memory.h"
#include "state/shared_state.h"
#include "synthetic_stream.h"

namespace {

using stalk::Event;
using stalk::OptStr;
using Clock = std::chrono::steady_clock;

constexpr double kNow = 1795655136.0;  // the synthetic stream's start time: filled workers stay alive

OptStr S(std::string_view v) { return OptStr{v, true, false}; }

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// SCHED_FIFO for the calling thread while alive, when STALK_BENCH_RT=1 (see the file comment).
class RealTime {
 public:
  RealTime() {
    const char* rt = std::getenv("STALK_BENCH_RT");
    if (rt == nullptr || std::string(rt) != "1") {
      return;
    }
    sched_param p{};
    p.sched_priority = 10;
    on_ = pthread_setschedparam(pthread_self(), SCHED_FIFO, &p) == 0;
    if (!on_) {
      std::fprintf(stderr, "STALK_BENCH_RT: SCHED_FIFO refused; running at normal priority\n");
    }
  }
  ~RealTime() {
    if (on_) {
      sched_param p{};
      pthread_setschedparam(pthread_self(), SCHED_OTHER, &p);
    }
  }
  RealTime(const RealTime&) = delete;
  RealTime& operator=(const RealTime&) = delete;

 private:
  bool on_ = false;
};

std::string Uuid(uint64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%08llx-0000-4000-8000-%012llx",
                static_cast<unsigned long long>((n >> 20) & 0xffffffff),
                static_cast<unsigned long long>(n & 0xffffffffffff));
  return buf;
}

void Fill(stalk::ClusterState& state, int workers, int names, int names_per_worker, double now) {
  std::vector<std::string> task_names;
  for (int i = 0; i < names; ++i) {
    task_names.push_back("proj.tasks.task_" + std::to_string(i));
  }
  uint64_t next = 1;
  for (int w = 0; w < workers; ++w) {
    const std::string host = "celery@worker-" + std::to_string(w) + ".example.internal";
    Event on;
    on.type = "worker-online";
    on.kind = stalk::EventKind::kWorkerOnline;
    on.hostname = host;
    on.timestamp = now, on.has_timestamp = true, on.freq = 2.0, on.active = 1;
    state.Apply(on, now);
    for (int k = 0; k < names_per_worker; ++k) {
      const std::string& name = task_names[static_cast<size_t>((w + k * 7) % names)];
      const std::string id = Uuid(next++);
      auto task_event = [&](std::string_view type, stalk::EventKind kind, std::string_view hostname, double ts) {
        Event ev;
        ev.type = type, ev.kind = kind, ev.uuid = id, ev.hostname = hostname;
        ev.timestamp = ts, ev.has_timestamp = true;
        return ev;
      };
      Event sent = task_event("task-sent", stalk::EventKind::kTaskSent, "gen1@web", now - 3);
      sent.name = S(name), sent.queue = S("celery");
      state.Apply(sent, now);
      Event rcv = task_event("task-received", stalk::EventKind::kTaskReceived, host, now - 2.5);
      rcv.name = S(name), rcv.eta = OptStr{{}, true, true};
      state.Apply(rcv, now);
      if (k % 10 == 9) {
        continue;  // left prefetched
      }
      state.Apply(task_event("task-started", stalk::EventKind::kTaskStarted, host, now - 2), now);
      if (k % 10 == 8) {
        continue;  // left executing
      }
      Event done = task_event("task-succeeded", stalk::EventKind::kTaskSucceeded, host, now - 1);
      done.runtime = 0.001 * static_cast<double>(k % 5000);
      state.Apply(done, now);
    }
  }
}

stalk::StateOptions StateFor(int workers, int names_per_worker, size_t extra_tasks) {
  stalk::StateOptions so;
  so.max_tasks = static_cast<size_t>(workers) * static_cast<size_t>(names_per_worker) + extra_tasks + 1000;
  so.max_workers = static_cast<size_t>(workers) + 100;
  return so;
}

const std::vector<stalk::QueueLength> kQueues = {{"celery", 10}};

// ------------------------------------------------------------------ render

void RenderTimes(int workers, int names, int names_per_worker) {
  stalk::SharedState state(StateFor(workers, names_per_worker, 0));
  stalk::MetricsOptions sliced_options;  // default slices
  stalk::MetricsOptions whole_options;
  whole_options.render_slice_seconds = 3600;  // one hold: the behaviour before slicing
  stalk::Metrics sliced(sliced_options), whole(whole_options);
  const auto t0 = Clock::now();
  {
    auto st = state.Write();
    st->AddListener(&sliced);
    st->AddListener(&whole);
    Fill(*st, workers, names, names_per_worker, kNow);
  }
  const double fill_s = Ms(Clock::now() - t0) / 1000;
  const double rss_mb = static_cast<double>(stalk::ResidentMemoryBytes().value_or(0)) / 1e6;
  std::printf(
      "layout: %d workers x %d names, %d names per worker = %d (worker, task) pairs; fill %.1f s, "
      "RSS %.0f MB (both listeners)\n",
      workers, names, names_per_worker, workers * names_per_worker, fill_s, rss_mb);
  stalk::IngestStats ingest;
  for (const stalk::Metrics* m : {&sliced, &whole}) {
    size_t bytes = 0, lines = 0, slices = 0, over_1ms = 0;
    double longest = 0;
    for (int i = 0; i < 2; ++i) {
      bytes = m->Render(state, ingest, kQueues, kNow, false).size();
    }
    std::vector<double> ms, cpu;
    for (int i = 0; i < 20; ++i) {
      stalk::RenderStats rs;
      std::string out;
      {
        RealTime rt;
        const double c = ThreadCpuMs();
        const auto a = Clock::now();
        out = m->Render(state, ingest, kQueues, kNow, false, &rs);
        ms.push_back(Ms(Clock::now() - a));
        cpu.push_back(ThreadCpuMs() - c);
      }
      lines = static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
      slices += rs.slices;
      over_1ms += rs.holds_over_1ms;
      longest = std::max(longest, rs.longest_hold_seconds);
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    const double median = (ms[9] + ms[10]) / 2;
    std::printf(
        "  %-18s render median %6.2f ms (min %.2f, max %.2f; CPU median %.2f ms) | %zu slices per render, "
        "longest hold %.3f ms, %zu of %zu holds > 1 ms | %.1f MB, %zu lines, %.0f ns/line\n",
        m == &sliced ? "sliced (0.3 ms):" : "one hold (before):", median, ms.front(), ms.back(), (cpu[9] + cpu[10]) / 2,
        slices / 20, longest * 1e3, over_1ms, slices, static_cast<double>(bytes) / 1e6, lines,
        median * 1e6 / static_cast<double>(lines));
  }
}

// ------------------------------------------------------------------ ingest during scrapes

// kHolder is the control: a thread that takes the read lock for exactly one slice (0.3 ms of
// spinning) over and over, rendering nothing — the writer's waits it causes are the floor this
// machine gives a 0.3 ms reader (futex wake-up included), to compare the sliced scrapes against.
enum class Scrapes { kNone, kSliced, kOneHold, kHolder };

struct IngestRun {
  double events_per_s = 0;
  std::vector<double> waits_ms;  // write-lock probe before each batch
  double batch_max_ms = 0;       // longest ApplyBatch
  size_t scrapes = 0;
  double scrape_median_ms = 0, longest_hold_ms = 0;
  size_t slices = 0, holds_over_1ms = 0;
};

IngestRun RunIngest(const std::vector<std::vector<stalk::RawMessage>>& batches, size_t stream_tasks,
                    int names_per_worker, Scrapes mode) {
  constexpr int kWorkers = 1000, kNames = 200;
  stalk::SharedState state(StateFor(kWorkers, names_per_worker, stream_tasks));
  stalk::MetricsOptions mo;
  if (mode == Scrapes::kOneHold) {
    mo.render_slice_seconds = 3600;
  }
  stalk::Metrics metrics(mo);
  {
    auto st = state.Write();
    st->AddListener(&metrics);
    Fill(*st, kWorkers, kNames, names_per_worker, kNow);
  }
  stalk::IngestStats stats;
  stalk::IngestQueue queue(1, stats);
  stalk::IngestPipeline pipeline(state, queue, stats);
  metrics.Render(state, stats, kQueues, kNow, false);  // warm the size hint, as a running server has

  std::atomic<bool> done{false};
  std::vector<double> scrape_ms;
  double longest_hold = 0;
  size_t slices = 0, over_1ms = 0;
  std::thread scraper([&] {
    RealTime rt;
    while (mode == Scrapes::kHolder && !done.load(std::memory_order_relaxed)) {
      auto hold = state.Read();
      const auto until = Clock::now() + std::chrono::microseconds(300);
      while (Clock::now() < until) {
      }
    }
    while ((mode == Scrapes::kSliced || mode == Scrapes::kOneHold) && !done.load(std::memory_order_relaxed)) {
      stalk::RenderStats rs;
      const auto a = Clock::now();
      const std::string out = metrics.Render(state, stats, kQueues, kNow, false, &rs);
      scrape_ms.push_back(Ms(Clock::now() - a));
      longest_hold = std::max(longest_hold, rs.longest_hold_seconds);
      slices += rs.slices;
      over_1ms += rs.holds_over_1ms;
    }
  });

  std::vector<double> waits;
  waits.reserve(batches.size());
  double batch_max = 0;
  size_t events = 0;
  double seconds = 0;
  {
    RealTime rt;
    const auto t0 = Clock::now();
    for (const auto& batch : batches) {
      const auto a = Clock::now();
      { auto probe = state.Write(); }
      const auto b = Clock::now();
      events += pipeline.ApplyBatch(batch);
      waits.push_back(Ms(b - a));
      batch_max = std::max(batch_max, Ms(Clock::now() - b));
    }
    seconds = Ms(Clock::now() - t0) / 1000;
  }
  done = true;
  scraper.join();

  IngestRun r;
  r.events_per_s = static_cast<double>(events) / seconds;
  r.waits_ms = std::move(waits);
  r.batch_max_ms = batch_max;
  r.scrapes = scrape_ms.size();
  if (!scrape_ms.empty()) {
    std::sort(scrape_ms.begin(), scrape_ms.end());
    r.scrape_median_ms = scrape_ms[scrape_ms.size() / 2];
  }
  r.longest_hold_ms = longest_hold * 1e3;
  r.slices = slices;
  r.holds_over_1ms = over_1ms;
  return r;
}

void IngestDuringScrapes(size_t stream_tasks, int names_per_worker) {
  stalk::bench::StreamOptions so;
  so.tasks = stream_tasks;
  so.start_time = kNow;
  auto stream = stalk::bench::MakeStream(so);
  std::vector<std::vector<stalk::RawMessage>> batches;
  for (size_t i = 0; i < stream.messages.size(); i += 256) {
    const size_t end = std::min(stream.messages.size(), i + 256);
    batches.emplace_back(std::make_move_iterator(stream.messages.begin() + static_cast<long>(i)),
                         std::make_move_iterator(stream.messages.begin() + static_cast<long>(end)));
  }
  std::printf(
      "ingest: state = 1000 workers x 200 names, %d names per worker, then a stream of %zu tasks, %zu events, "
      "%zu batches of <= 256 messages\n",
      names_per_worker, stream_tasks, stream.events, batches.size());
  const std::pair<Scrapes, const char*> modes[] = {
      {Scrapes::kNone, "no scrapes"},
      {Scrapes::kSliced, "scrapes, sliced"},
      {Scrapes::kOneHold, "scrapes, one hold"},
      {Scrapes::kHolder, "0.3 ms holder"},
  };
  for (const auto& [mode, label] : modes) {
    std::vector<IngestRun> runs;
    for (int i = 0; i < 3; ++i) {
      runs.push_back(RunIngest(batches, stream_tasks, names_per_worker, mode));
    }
    std::sort(runs.begin(), runs.end(),
              [](const IngestRun& a, const IngestRun& b) { return a.events_per_s < b.events_per_s; });
    const IngestRun& r = runs[1];
    // Waits and holds over all 3 runs.
    std::vector<double> waits;
    double batch_max = 0, longest_hold = 0;
    size_t scrapes = 0, slices = 0, over_1ms = 0;
    for (const IngestRun& x : runs) {
      waits.insert(waits.end(), x.waits_ms.begin(), x.waits_ms.end());
      batch_max = std::max(batch_max, x.batch_max_ms);
      longest_hold = std::max(longest_hold, x.longest_hold_ms);
      scrapes += x.scrapes, slices += x.slices, over_1ms += x.holds_over_1ms;
    }
    std::sort(waits.begin(), waits.end());
    const auto pct = [&](double p) {
      return waits[std::min(waits.size() - 1, static_cast<size_t>(p * static_cast<double>(waits.size())))];
    };
    std::printf(
        "  %-18s %7.0f events/s (runs %.0f-%.0f) | writer wait p50 %.3f, p99 %.3f, p99.9 %.3f, max %.3f ms "
        "| longest batch %.2f ms | %zu scrapes (median %.1f ms), longest hold %.3f ms, %zu of %zu holds > 1 ms\n",
        label, r.events_per_s, runs.front().events_per_s, runs.back().events_per_s, pct(0.5), pct(0.99), pct(0.999),
        waits.back(), batch_max, scrapes, r.scrape_median_ms, longest_hold, over_1ms, slices);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "render";
  if (mode == "render") {
    const int workers = argc > 2 ? std::atoi(argv[2]) : 1000;
    const int names = argc > 3 ? std::atoi(argv[3]) : 200;
    std::vector<int> per_worker;
    for (int i = 4; i < argc; ++i) {
      per_worker.push_back(std::atoi(argv[i]));
    }
    if (per_worker.empty()) {
      per_worker = {names, 20};
    }
    for (int n : per_worker) {
      RenderTimes(workers, names, std::min(n, names));
    }
    return 0;
  }
  if (mode == "ingest") {
    IngestDuringScrapes(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100000, argc > 3 ? std::atoi(argv[3]) : 20);
    return 0;
  }
  std::fprintf(stderr,
               "usage: metrics_bench render [workers] [names] [names_per_worker...] | ingest [stream_tasks] "
               "[names_per_worker]\n");
  return 2;
}
