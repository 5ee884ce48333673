// Stalk — Celery monitoring server.
// rules_bench: what business-metric rules (--metric_rules) cost ingestion (bench/README.md).
//   rules_bench [tasks=100000] [rules=50] [rules.yml: use this file instead of the generated rules]
// The synthetic stream applied through the ingest writer's own path into a state without and with
// `rules` rules attached: counters on task-succeeded by task-name glob with name/worker labels,
// histograms of runtimes, counters on task-received with a label cut out of kwargs by a regex, and
// gauges from result keys. Interleaved runs, medians, after one warm-up each.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "custom/metric_rules.h"
#include "ingest/ingest_pipeline.h"
#include "synthetic_stream.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

std::string RulesYaml(int n) {
  std::string y = "rules:\n";
  for (int i = 0; i < n; ++i) {
    const std::string name = "r" + std::to_string(i);
    switch (i % 4) {
      case 0:
        y += "  - {name: " + name +
             ", type: counter, match: {event: task-succeeded, task: \"*\"}, labels: {task: name, "
             "worker: worker}}\n";
        break;
      case 1:
        y += "  - {name: " + name +
             ", type: histogram, match: {event: task-succeeded}, labels: {task: name}, value: "
             "runtime, buckets: [0.01, 0.1, 1, 10]}\n";
        break;
      case 2:
        y += "  - {name: " + name +
             ", type: counter, match: {event: task-received}, labels: {arg: {from: args, regex: "
             "\"^\\\\[?'?([^,']*)\"}}}\n";
        break;
      default:
        y += "  - {name: " + name +
             ", type: gauge, match: {event: \"task-*\", task: \"*\"}, labels: {state: type}, "
             "value: 1}\n";
        break;
    }
  }
  return y;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t tasks = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  const int nrules = argc > 2 ? std::atoi(argv[2]) : 50;
  const std::string path = argc > 3 ? argv[3] : "/tmp/stalk_rules_bench.yml";
  if (FILE* f = argc > 3 ? nullptr : std::fopen(path.c_str(), "w")) {
    std::fputs(RulesYaml(nrules).c_str(), f);
    std::fclose(f);
  }
  bench::StreamOptions so;
  so.tasks = tasks;
  auto stream = bench::MakeStream(so);
  std::printf("stream: %zu tasks, %zu messages, %zu events; %d rules\n", tasks, stream.messages.size(), stream.events,
              nrules);
  std::vector<double> plain, ruled;
  for (int run = 0; run < 10; ++run) {
    const bool with_rules = run % 2 == 1;
    StateOptions opt;
    opt.max_tasks = tasks;
    SharedState state(opt);
    IngestStats stats;
    IngestQueue q(1, stats);
    IngestPipeline p(state, q, stats);
    MetricRules rules;
    if (with_rules) {
      auto loaded = rules.Load(path);
      if (!loaded) {
        std::printf("rules: %s\n", loaded.error().c_str());
        return 1;
      }
      state.Write()->AddListener(&rules);
    }
    const auto t0 = Clock::now();
    const size_t ev = bench::ApplyAll(p, stream.messages);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run >= 2)
      (with_rules ? ruled : plain).push_back(static_cast<double>(ev) / s);
    if (with_rules && run == 9) {
      std::string m;
      rules.Append(false, m);
      std::printf("exposition of the rules after the last run: %zu bytes, %zu lines\n", m.size(),
                  static_cast<size_t>(std::count(m.begin(), m.end(), '\n')));
    }
  }
  std::sort(plain.begin(), plain.end());
  std::sort(ruled.begin(), ruled.end());
  const double a = plain[plain.size() / 2], b = ruled[ruled.size() / 2];
  std::printf("apply: median %.0f events/s without rules, %.0f with %d rules (%+.1f %%)\n", a, b, nrules,
              100.0 * (b / a - 1));
  return 0;
}
