// Stalk — Celery monitoring server.
// `stalk replay FILE`: feeds a capture through the decoder and state at full speed, single-threaded,
// and prints what it did — events applied, events/s, tasks and workers tracked, rejects, RSS. The
// in-process decode+apply benchmark (bench/README.md) is this command on a generated capture.
#include <chrono>
#include <cstdio>
#include <memory>

#include <unistd.h>

#include "cli/commands.h"
#include "common/log.h"
#include "ingest/capture_file.h"
#include "ingest/ingest_pipeline.h"

namespace stalk {

int RunReplay(const ReplaySettings& s) {
  auto log = Logger("replay");
  std::vector<RawMessage> messages;
  {
    auto reader = CaptureReader::Open(s.file);
    if (!reader) {
      log->error("{}", reader.error());
      return 2;
    }
    std::unique_ptr<CaptureReader> r(*reader);
    while (auto m = r->Next()) {
      messages.push_back(std::move(*m));
    }
  }
  StateOptions so;
  so.max_tasks = static_cast<size_t>(std::max(1, s.max_tasks));
  SharedState state(so);
  IngestStats stats;
  IngestQueue queue(1, stats);
  IngestPipeline pipeline(state, queue, stats);
  std::vector<RawMessage> batch;
  size_t events = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int round = 0; round < std::max(1, s.repeat); ++round) {
    for (size_t i = 0; i < messages.size(); i += 256) {
      batch.assign(
          std::make_move_iterator(messages.begin() + static_cast<std::ptrdiff_t>(i)),
          std::make_move_iterator(messages.begin() + static_cast<std::ptrdiff_t>(std::min(messages.size(), i + 256))));
      events += pipeline.ApplyBatch(batch);
      // Give the messages back for the next round.
      for (size_t k = 0; k < batch.size(); ++k) {
        messages[i + k] = std::move(batch[k]);
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t rejected = 0;
  for (auto& r : stats.rejected) {
    rejected += r.load();
  }
  long rss_pages = 0, total = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &total, &rss_pages) != 2) {
      rss_pages = 0;
    }
    std::fclose(f);
  }
  auto st = state.Read();
  std::printf("messages %zu x %d, events applied %zu, rejected %llu\n", messages.size(), std::max(1, s.repeat), events,
              static_cast<unsigned long long>(rejected));
  std::printf("time %.3f s, %.0f events/s\n", secs, secs > 0 ? static_cast<double>(events) / secs : 0.0);
  std::printf("tasks tracked %zu, workers %zu, RSS %.1f MiB\n", st->task_count(), st->workers().size(),
              static_cast<double>(rss_pages) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20));
  return 0;
}

}  // namespace stalk
