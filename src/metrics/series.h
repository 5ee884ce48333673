// Stalk — Celery monitoring server.
// The per-label-set records behind Metrics: what each compatible metric set counts for one
// (worker, task) pair, one (name, hostname, queue_name) triple, or one task name. Plain data; Metrics
// (metrics.cc) fills them on the ingest thread and renders them (metrics_render*.cc).
#pragma once

#include <absl/hash/hash.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "metrics/histogram.h"

namespace stalk::detail {

// Standard task events, indexed by EventKind (kTaskSent = 0 ... kTaskRejected = 7).
constexpr size_t kStdTaskEvents = 8;

// Flower's set for one (worker, task) label pair.
struct FlowerPair {
  uint32_t worker = 0, task = 0;                             // LabelSpace slots
  std::string labels;                                        // worker="…",task="…" — built once
  std::array<uint64_t, kStdTaskEvents> events{};             // flower_events_total by type
  std::vector<std::pair<uint32_t, uint64_t>> custom_events;  // task-xyz: (type slot, count)
  Histogram runtime;                                         // flower_task_runtime_seconds
  double prefetch_time = 0;                                  // started - received of the last started task without eta
  bool has_prefetch_time = false;
  bool prefetch_series = false;  // a task-received without eta was seen: the gauge exists
};

struct CeleryKey {
  uint32_t task, host, queue;
  bool operator==(const CeleryKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const CeleryKey& k) {
    return H::combine(std::move(h), k.task, k.host, k.queue);
  }
};

// celery-exporter's set for one (name, hostname, queue_name) label triple.
struct CelerySeries {
  std::string labels;                             // name="…",hostname="…",queue_name="…" — built once
  std::array<uint64_t, kStdTaskEvents> counts{};  // celery_task_*_total, by EventKind
  std::vector<std::pair<uint32_t, uint64_t>> failed_by_exception;  // (exception slot, count)
  Histogram runtime;                                               // celery_task_runtime
  // celery-exporter increments every counter of a label set by 0 on any event but task-sent, so the
  // whole set shows up at 0; task_failed then gets an exception="" series at 0 — except from the
  // task-failed event itself, which labels its exception.
  bool all_visible = false;
  bool blank_exception = false;
};

// Stalk's per-task-name histograms.
struct TaskNameSeries {
  Histogram queue_wait;   // stalk_task_queue_wait_seconds
  Histogram e2e_latency;  // stalk_task_e2e_latency_seconds
};

}  // namespace stalk::detail
