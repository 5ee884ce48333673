// Stalk — Celery monitoring server.
// Synthetic Celery event streams with realistic shapes, for benchmarks: kombu envelopes (base64 JSON
// bodies) exactly as celery 5.2/kombu 5.2 publish them on Redis (celery-protocol.md §1.3, §2.3):
// task-sent from clients one per message; worker task events grouped 1-2 per task.multi list, as
// prefork workers flush them; heartbeats from every worker every 2 s of simulated time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ingest/ingest_queue.h"

#include "ingest/ingest_pipeline.h"

namespace stalk::bench {

struct StreamOptions {
  size_t tasks = 250000;  // each emits 4 events (5-7 when retried)
  size_t workers = 50;
  double fail_ratio = 0.1;
  double retry_ratio = 0.05;
  double tasks_per_second = 20000;  // simulated rate: spaces timestamps and heartbeats
  double start_time = 1795655136.0;
  uint64_t seed = 42;
};

struct Stream {
  std::vector<RawMessage> messages;
  size_t events = 0;
};

Stream MakeStream(const StreamOptions& options);

// Applies `msgs` through the ingest writer's own path (batches of 256, as IngestPipeline does) and
// gives the messages back in place, so a stream can be replayed; returns the events applied.
size_t ApplyAll(IngestPipeline& pipeline, std::vector<RawMessage>& msgs);

}  // namespace stalk::bench
