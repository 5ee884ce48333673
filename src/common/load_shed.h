// Stalk — Celery monitoring server.
// LoadShed: what the ingest path gives up, and in which order, when the state writer cannot keep up
// with the broker. The broker reader never waits for the writer (a reader that stops draining its
// socket gets cut off by Redis — client-output-buffer-limit pubsub — and loses everything in flight),
// so the bounded IngestQueue between them absorbs bursts; as it fills, work is shed cheapest-to-lose
// first, each stage counted (stalk_shed_total{stage}):
//
//   stage            starts at queue fill  what is given up
//   store_events     25 %                  per-event rows of --store_events (task history rows stay)
//   custom_events    50 %                  application events (neither task-* nor worker-*): the
//                                          custom-event feed, business-metric rules on them
//   queue_full       100 %                 whole broker messages, whatever they carry (the reader
//                                          drops them; task-state events are lost only here)
//
// A stage ends once the queue is back under half its threshold (hysteresis, so the level does not
// flap at a boundary). Thread-safe: relaxed atomics, read on the ingest writer's hot path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace stalk {

enum class ShedStage : uint8_t {
  kStoreEvents = 0,
  kCustomEvents = 1,
  kQueueFull = 2,  // counted by the IngestQueue itself (IngestStats::queue_dropped)
  kCount,
};

std::string_view ShedStageName(ShedStage stage);

class LoadShed {
 public:
  // Queue fill (per mille of its bound) at which each stage starts. Stage kQueueFull needs no
  // threshold: the queue drops when a message does not fit.
  static constexpr std::array<uint32_t, 2> kStartPermille{250, 500};

  // True while `stage` is in force.
  bool Sheds(ShedStage stage) const { return level_.load(std::memory_order_relaxed) > static_cast<uint8_t>(stage); }
  void Count(ShedStage stage, uint64_t n = 1) {
    shed_[static_cast<size_t>(stage)].fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t count(ShedStage stage) const { return shed_[static_cast<size_t>(stage)].load(std::memory_order_relaxed); }
  // Stages in force: 0 none, 1 store_events, 2 store_events and custom_events.
  uint8_t level() const { return level_.load(std::memory_order_relaxed); }
  // Times a stage started (the level rose), for the log and /api/stalk/stats.
  uint64_t level_rises() const { return rises_.load(std::memory_order_relaxed); }

  // Recomputes the level from the queue's fill. Called by the queue on every push and pop (cheap:
  // a few compares and, only when the level changes, one store). Returns true when the level rose.
  bool Update(size_t queue_bytes, size_t max_bytes);

 private:
  std::atomic<uint8_t> level_{0};
  std::atomic<uint64_t> rises_{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(ShedStage::kCount)> shed_{};
};

}  // namespace stalk
