// Stalk — Celery monitoring server.
#include "ingest/ingest_pipeline.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "common/clock.h"
#include "common/thread_name.h"

namespace stalk {

IngestPipeline::IngestPipeline(SharedState& state, IngestQueue& queue, IngestStats& stats, PipelineOptions options)
    : state_(state), queue_(queue), stats_(stats), options_(options), decoder_(options.max_message_bytes) {}

IngestPipeline::~IngestPipeline() { Stop(); }

void IngestPipeline::Start() {
  thread_ = std::thread([this] {
    NameThisThread("stalk-apply");
    Run();
  });
}

void IngestPipeline::Stop() {
  stop_ = true;
  queue_.Close();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void IngestPipeline::Reject(RejectReason why, std::string_view detail) {
  const auto i = static_cast<size_t>(why);
  stats_.rejected[i].fetch_add(1, std::memory_order_relaxed);
  if (reject_log_[i].Allow()) {
    std::string shown(detail.substr(0, 200));
    Logger("ingest")->warn(
        "rejected a message: {} ({}); further ones are counted in /metrics, "
        "logged at most once a minute",
        RejectReasonName(why), shown);
  }
}

size_t IngestPipeline::ApplyBatch(const std::vector<RawMessage>& batch) {
  if (batch.empty()) {
    return 0;
  }
  size_t applied = 0;
  size_t shed = 0;
  double last_ts = 0;
  // Read once per batch: a batch is a fraction of a millisecond of work.
  const bool shed_custom = stats_.shed.Sheds(ShedStage::kCustomEvents);
  auto w = state_.Write();
  ClusterState& st = *w;
  for (const RawMessage& m : batch) {
    auto sink = [&](const Event& ev) {
      if (shed_custom && ev.kind == EventKind::kOther) {
        ++shed;
        return;
      }
      st.Apply(ev, m.received_at);
      if (ev.has_timestamp) {
        last_ts = ev.timestamp;
      }
      ++applied;
    };
    auto reject = [&](RejectReason why, std::string_view detail) { Reject(why, detail); };
    if (m.raw_body) {
      decoder_.DecodeBody(m.content_type, m.payload, sink, reject);
    } else {
      decoder_.DecodeKombuEnvelope(m.payload, sink, reject);
    }
  }
  if (shed > 0) {
    stats_.shed.Count(ShedStage::kCustomEvents, shed);
  }
  stats_.messages_decoded.fetch_add(batch.size(), std::memory_order_relaxed);
  stats_.events_ingested.fetch_add(applied, std::memory_order_relaxed);
  if (applied > 0) {
    const double now = UnixSeconds();
    stats_.last_event_at = now;
    if (last_ts > 0) {
      stats_.ingest_lag_seconds = now - last_ts;
    }
  }
  return applied;
}

void IngestPipeline::NoteShedLevel() {
  const uint8_t level = stats_.shed.level();
  if (level == shed_level_seen_) {
    return;
  }
  const bool rose = level > shed_level_seen_;
  shed_level_seen_ = level;
  if (rose && shed_log_.Allow()) {
    Logger("ingest")->warn(
        "the state writer is falling behind (ingest queue {} of {} MiB): shedding {}{}; "
        "counted in stalk_shed_total, logged at most once a minute",
        stats_.queue_bytes.load(std::memory_order_relaxed) >> 20, queue_.max_bytes() >> 20,
        ShedStageName(ShedStage::kStoreEvents), level >= 2 ? " and custom events" : "");
  } else if (!rose && level == 0 && caught_up_log_.Allow()) {
    Logger("ingest")->info("the state writer caught up: load shedding ended");
  }
}

void IngestPipeline::Run() {
  if (options_.writer_nice > 0) {
    // Lowering a thread's priority needs no privilege; if it fails anyway, the writer runs as is.
    const auto tid = static_cast<id_t>(gettid());
    errno = 0;
    const int current = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) {
      setpriority(PRIO_PROCESS, tid, std::min(19, current + options_.writer_nice));
    }
  }
  std::vector<RawMessage> batch;
  batch.reserve(options_.batch_max);
  double next_tick = 0;
  for (;;) {
    const bool more = queue_.PopBatch(batch, options_.batch_max, 200);
    if (options_.capture != nullptr) {
      for (const RawMessage& m : batch) {
        options_.capture->Write(m);
      }
    }
    ApplyBatch(batch);
    NoteShedLevel();
    if (options_.test_writer_delay_us > 0 && !batch.empty()) {
      std::this_thread::sleep_for(std::chrono::microseconds(options_.test_writer_delay_us));
    }
    const double now = UnixSeconds();
    if (now >= next_tick) {
      auto w = state_.Write();
      w->Tick(now);
      next_tick = now + options_.tick_interval;
    }
    if (!more) {
      break;
    }
    if (!batch.empty() && batch.size() < options_.batch_max && options_.gather_us > 0 && !stop_) {
      std::this_thread::sleep_for(std::chrono::microseconds(options_.gather_us));
    }
  }
}

}  // namespace stalk
