// Stalk — Celery monitoring server.
// IngestPipeline: the single writer of the state. Its thread pops batches of raw messages from the
// IngestQueue, decodes them and applies the events under one write-lock hold per batch (bounded, so
// readers wait at most one batch), and ticks worker liveness once a second. Bad messages are counted
// by reason in IngestStats and logged at most once a minute per reason. While the queue is filling
// (IngestStats::shed, common/load_shed.h), application events are decoded but not applied, and counted.
#pragma once

#include <array>
#include <atomic>
#include <thread>
#include <vector>

#include "common/ingest_stats.h"
#include "common/log.h"
#include "ingest/capture_file.h"
#include "ingest/ingest_queue.h"
#include "protocol/event_decoder.h"
#include "protocol/reject_reason.h"
#include "state/shared_state.h"

namespace stalk {

struct PipelineOptions {
  size_t batch_max = 256;      // messages per write-lock hold: ~0.1-0.5 ms of work
  double tick_interval = 1.0;  // seconds between liveness checks
  size_t max_message_bytes = 64u << 20;
  // After a batch that was not full, wait this long before taking the next: the writer then wakes
  // at most ~1,000 times a second instead of once per message (a wake-up costs two futex syscalls,
  // several microseconds each in a VM). Adds at most this much latency; a writer that falls behind
  // takes full batches and never waits.
  int gather_us = 1000;
  // The writer thread runs this much nicer than the rest of Stalk (Linux per-thread nice; 0 = same).
  // When CPU is short, the broker reader must win: a reader that falls behind gets cut off by Redis
  // (client-output-buffer-limit) and everything in flight is lost, while a writer that falls behind
  // only fills the IngestQueue, which exists to absorb that. The reader needs ~1/3 of the writer's
  // CPU, so this costs the writer little. Scheduling groups (autogroup, cgroups) give Stalk its share
  // as a whole; this only orders the threads within it.
  int writer_nice = 5;
  // `stalk serve --capture`: every message taken from the queue is written here before it is decoded.
  // On this thread, never the broker reader's: a slow disk then fills the ingest queue, which sheds
  // (counted), instead of stalling the reader until Redis cuts it off. Not owned.
  CaptureWriter* capture = nullptr;
  // TEST ONLY: the writer sleeps this long after every batch, to make it artificially slow so the
  // fault tests can fill the ingest queue and watch load shedding (set from the environment variable
  // STALK_TEST_WRITER_DELAY_US by `stalk serve`; 0 in production).
  int test_writer_delay_us = 0;
};

class IngestPipeline {
 public:
  IngestPipeline(SharedState& state, IngestQueue& queue, IngestStats& stats, PipelineOptions options = {});
  ~IngestPipeline();

  void Start();
  void Stop();  // drains what is queued, then joins
  // Decodes and applies messages synchronously (replay, benchmarks, tests). Returns events applied.
  size_t ApplyBatch(const std::vector<RawMessage>& batch);

 private:
  void Run();
  void Reject(RejectReason why, std::string_view detail);
  // Logs when the shedding level changed since the last call (at most once a minute while it rises).
  void NoteShedLevel();

  SharedState& state_;
  IngestQueue& queue_;
  IngestStats& stats_;
  PipelineOptions options_;
  EventDecoder decoder_;
  std::array<RateLimiter, kRejectReasonSlots> reject_log_;
  RateLimiter shed_log_{std::chrono::seconds(60)};
  RateLimiter caught_up_log_{std::chrono::seconds(60)};
  uint8_t shed_level_seen_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace stalk
