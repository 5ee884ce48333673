// Stalk — Celery monitoring server.
// metrics_bench: time of Metrics::Render for a large cluster. Fills a ClusterState with 1,000
// workers and 200 task names through the real listener path (each worker online, then for each of
// its task names one task sent -> received -> started -> succeeded, plus a few tasks left
// prefetched and executing), then renders 2 times to warm up and 20 times measured, and prints the
// median, min and max in milliseconds, the exposition size, and the process RSS after filling
// (state + metrics). Both metric sets are on (the default). Timing is wall clock on a shared machine:
// compare medians, and expect the max to catch a neighbour's load.
//
// Two layouts: "full" (every worker ran every task name: 200,000 (worker, task) pairs, the worst
// case Flower's label set allows) and "sharded" (each worker serves 20 of the 200 names, as with
// per-queue worker pools: 20,000 pairs).
//
//   metrics_bench [workers] [names] [names_per_worker...]   (defaults: 1000 200 200 20)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/ingest_stats.h"
#include "metrics/metrics.h"
#include "metrics/process_memory.h"
#include "state/cluster_state.h"

namespace {

using stalk::Event;
using stalk::OptStr;

OptStr S(std::string_view v) { return OptStr{v, true, false}; }

std::string Uuid(uint64_t n) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%08llx-0000-4000-8000-%012llx", static_cast<unsigned long long>(n >> 20),
                static_cast<unsigned long long>(n));
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

void Run(int workers, int names, int names_per_worker) {
  const double now = 1.7e9;
  stalk::StateOptions so;
  so.max_tasks = static_cast<size_t>(workers) * static_cast<size_t>(names_per_worker) + 1000;
  so.max_workers = static_cast<size_t>(workers) + 10;
  stalk::ClusterState state(so);
  stalk::Metrics metrics(stalk::MetricsOptions{});
  state.AddListener(&metrics);
  const auto t0 = std::chrono::steady_clock::now();
  Fill(state, workers, names, names_per_worker, now);
  const double fill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rss_mb = static_cast<double>(stalk::ResidentMemoryBytes().value_or(0)) / 1e6;
  stalk::IngestStats ingest;
  std::vector<stalk::QueueLength> queues = {{"celery", 10, 2}};

  size_t bytes = 0, lines = 0;
  for (int i = 0; i < 2; ++i) {
    bytes = metrics.Render(state, ingest, queues, now, false).size();
  }
  std::vector<double> ms;
  for (int i = 0; i < 20; ++i) {
    const auto a = std::chrono::steady_clock::now();
    std::string out = metrics.Render(state, ingest, queues, now, false);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    lines = static_cast<size_t>(std::count(out.begin(), out.end(), '\n'));
  }
  std::sort(ms.begin(), ms.end());
  std::printf("workers=%d names=%d names_per_worker=%d pairs=%d fill=%.2fs rss=%.0fMB | render median=%.2f ms min=%.2f max=%.2f"
              " | %.1f MB, %zu lines, %.0f ns/line\n",
              workers, names, names_per_worker, workers * names_per_worker, fill_s, rss_mb, (ms[9] + ms[10]) / 2, ms.front(),
              ms.back(), static_cast<double>(bytes) / 1e6, lines, (ms[9] + ms[10]) / 2 * 1e6 / static_cast<double>(lines));
}

}  // namespace

int main(int argc, char** argv) {
  const int workers = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int names = argc > 2 ? std::atoi(argv[2]) : 200;
  std::vector<int> per_worker;
  for (int i = 3; i < argc; ++i) {
    per_worker.push_back(std::atoi(argv[i]));
  }
  if (per_worker.empty()) {
    per_worker = {names, 20};
  }
  for (int n : per_worker) {
    Run(workers, names, std::min(n, names));
  }
  return 0;
}
