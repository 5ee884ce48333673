// Stalk — Celery monitoring server.
// alerts_bench: what alerting costs ingestion, with receivers that never answer (bench/README.md).
//   alerts_bench [tasks=100000]
// The synthetic stream (10 % failures, real-looking tracebacks) is applied through the ingest
// writer's own path into a state without and with alerting attached: the rule evaluator running every
// 250 ms over failure-count/rate/runtime/worker rules, its notifier, and the Sentry forwarder, both
// pointed at a TCP listener that accepts connections and never answers (the "hung receiver" case;
// a 500-answering receiver costs less: it answers). Interleaved runs, medians, after one warm-up each.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "alerts/alerting.h"
#include "ingest/ingest_pipeline.h"
#include "synthetic_stream.h"

using namespace stalk;
using Clock = std::chrono::steady_clock;

namespace {

// A listening socket nobody accepts from: connects succeed (kernel backlog), requests hang.
int HungListener(int& port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 64) != 0)
    std::abort();
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  const size_t tasks = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
  int port = 0;
  const int hung = HungListener(port);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  setenv("BENCH_HOOK_URL", url.c_str(), 1);
  const std::string rules_path = "/tmp/stalk_alerts_bench_rules.yml";
  if (FILE* f = std::fopen(rules_path.c_str(), "w")) {
    std::fputs(R"(evaluation_interval: 250ms
channels:
  hook: {type: webhook, url_env: BENCH_HOOK_URL, timeout: 2s, max_retries: 3}
default_channels: [hook]
rules:
  - {name: Fails, kind: task_failure_count, params: {window: 1m, threshold: 0}}
  - {name: Rate, kind: task_failure_rate, params: {window: 5m, threshold: 0.05}}
  - {name: Slow, kind: task_runtime, params: {sla: 1s, percentile: 95, window: 5m}}
  - {name: Offline, kind: worker_offline}
)",
               f);
    std::fclose(f);
  }

  bench::StreamOptions so;
  so.tasks = tasks;
  auto stream = bench::MakeStream(so);
  std::printf("stream: %zu tasks, %zu messages, %zu events; receivers: a listener that never answers\n", tasks,
              stream.messages.size(), stream.events);
  std::vector<double> plain, alerting;
  for (int run = 0; run < 8; ++run) {
    const bool with_alerts = run % 2 == 1;
    StateOptions opt;
    opt.max_tasks = tasks;
    SharedState state(opt);
    IngestStats stats;
    IngestQueue q(1, stats);
    IngestPipeline p(state, q, stats);
    std::unique_ptr<Alerting> a;
    if (with_alerts) {
      auto made = Alerting::Create(
          AlertingSetup{rules_path, "http://key@127.0.0.1:" + std::to_string(port) + "/1", "bench", 1e9, ""},
          AlertSources{&state, &stats, nullptr, nullptr});
      if (!made || !*made) {
        std::printf("alerting setup failed: %s\n", made ? "null" : made.error().c_str());
        return 1;
      }
      a = std::move(*made);
      a->Attach(*state.Write());
      a->Start();
    }
    const auto t0 = Clock::now();
    const size_t ev = bench::ApplyAll(p, stream.messages);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (run >= 2)
      (with_alerts ? alerting : plain).push_back(static_cast<double>(ev) / s);
    if (a && run == 7) {
      std::string m;
      a->RenderMetrics(m, false);
      std::printf("after the last run (before stop):\n%s", m.c_str());
    }
    const auto s0 = Clock::now();
    if (a)
      a->Stop();
    if (a && run == 7) {
      std::printf("Stop() took %.2fs (deliveries in flight are aborted, queued ones dropped)\n",
                  std::chrono::duration<double>(Clock::now() - s0).count());
    }
  }
  std::sort(plain.begin(), plain.end());
  std::sort(alerting.begin(), alerting.end());
  const double p = plain[plain.size() / 2], w = alerting[alerting.size() / 2];
  std::printf(
      "apply: median %.0f events/s without alerting, %.0f with alerting + Sentry on hung receivers (%+.1f %%)\n", p, w,
      100.0 * (w / p - 1));
  close(hung);
  return 0;
}
