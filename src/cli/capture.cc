// Stalk — Celery monitoring server.
// `stalk capture`: records the live event stream from a broker into a capture file, for
// `stalk replay`, decoder tests with real payloads and benchmarks. Bounded by time and count.
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "common/log.h"
#include "ingest/capture_file.h"
#include "transport/redis_event_source.h"

namespace stalk {
namespace {
std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop = true; }
}  // namespace

int RunCapture(const CaptureSettings& s) {
  auto log = Logger("capture");
  auto url = ParseBrokerUrl(s.broker);
  if (!url) {
    log->error("--broker: {}", url.error());
    return 2;
  }
  auto w = CaptureWriter::Open(s.output);
  if (!w) {
    log->error("{}", w.error());
    return 2;
  }
  std::unique_ptr<CaptureWriter> writer(*w);
  IngestStats stats;
  std::atomic<long long> count{0};
  RedisEventOptions eo;
  eo.global_keyprefix = s.global_keyprefix;
  eo.fanout_prefix = s.fanout_prefix;
  RedisEventSource source(*url, eo, stats, [&](std::string&& payload, double received_at) {
    if (count.load() < s.max_messages) {
      writer->Write(RawMessage{std::move(payload), received_at, {}, false});
      ++count;
    }
  });
  // SIGINT/SIGTERM end the capture early but cleanly: the file is flushed and closed.
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  source.Start();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(s.duration);
  while (!g_stop && std::chrono::steady_clock::now() < deadline && count.load() < s.max_messages) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  source.Stop();
  log->info("captured {} messages to {}", count.load(), s.output);
  return 0;
}

}  // namespace stalk
