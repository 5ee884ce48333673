// Stalk — Celery monitoring server.
// Metrics: the Prometheus exposition behind /metrics. Three metric sets, each family documented in
// src/metrics/README.md:
//  - Flower's (flower_*), same names, types and labels, with Flower's bugs fixed: worker liveness and
//    the prefetched/executing gauges are computed from the cluster state at render time, so a worker
//    killed with SIGKILL goes to 0 when its heartbeats stop and revoked tasks cannot leave a gauge
//    stuck above 0;
//  - celery-exporter's (celery_*), same names and labels (hostname keeps the full worker name);
//  - Stalk's own (stalk_*): queue wait and end-to-end histograms, ingest health, memory.
// Counters and histograms are accumulated from state callbacks (they count events, which the state
// does not keep); gauges are read from the state when rendering. Label values are capped per label
// (MetricsOptions) and folded into "other" past the cap, so a misbehaving client cannot blow up the
// series count. Not a general metrics registry: it knows its families by name.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "metrics/label_space.h"
#include "metrics/series.h"
#include "state/state_listener.h"

namespace stalk {

class ClusterState;
class ExpositionWriter;
class SharedState;
class SlicedReadLock;
struct IngestStats;

// Content types for the two formats Render writes.
inline constexpr std::string_view kPrometheusTextContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct MetricsOptions {
  // Histogram bucket bounds (seconds) for every histogram; empty = Flower's default buckets
  // (prometheus_client's .005 … 10). +Inf is implicit; unsorted input is sorted.
  std::vector<double> runtime_buckets;
  bool flower_compat = true;           // flower_* families
  bool celery_exporter_compat = true;  // celery_* families
  // Cardinality caps: distinct task names / worker hostnames given their own series; more are
  // folded into task="other" / worker="other" (hostname="other"), counted in
  // stalk_metrics_label_overflow_total. task-sent client hostnames ("gen<pid>@web") get their own
  // max_workers cap (label="client"), so client churn never folds real workers.
  size_t max_task_names = 1000;
  size_t max_workers = 5000;
  // A task name not seen for this long leaves the per-(worker, task) gauges (0 = never). Counters
  // and histograms keep it: they must stay monotonic.
  double task_name_ttl_seconds = 0;
  // Longest hold of the state's read lock in one slice of a render (seconds): the ingest writer
  // waits about this long (plus a futex wake-up) for a scrape. Each release costs a lock round trip
  // and, when ingestion is busy, one write batch of waiting, so smaller slices make a render slower
  // under load. bench/metrics_bench.cc: at 0.3 ms the writer's wait is p99 ~0.6 ms during
  // back-to-back scrapes, the same as behind a reader that does nothing but hold the lock 0.3 ms.
  double render_slice_seconds = 0.0003;
};

// What one Render did (benchmarks, tests).
struct RenderStats {
  size_t slices = 0;                // read-lock holds
  double longest_hold_seconds = 0;  // the longest of them
  size_t holds_over_1ms = 0;        // holds longer than 1 ms (preemption, or a unit too large)
};

// One broker queue as the transport measured it; -1 = unknown (that series is not written).
struct QueueLength {
  std::string name;
  int64_t messages;
  int64_t consumers = -1;  // celery_active_consumer_count (AMQP reports it; Redis cannot)
  int64_t workers = -1;    // celery_active_worker_count: workers consuming it (from inspect)
  int64_t processes = -1;  // celery_active_process_count: their pool processes (from inspect)
};

// Registered with ClusterState::AddListener. The On* callbacks run on the ingest thread under the
// state's write lock. Render takes the read lock itself, in slices of render_slice_seconds (see
// sliced_read_lock.h), so a scrape of a big cluster never pauses ingestion for long; it may run in
// several threads at once and mutates nothing (the size hint is an atomic). Between slices the
// writer may apply events: series are read by index from vectors that only grow, the per-worker
// gauges are copied out first, and each series (a histogram with its buckets, _count and _sum) is
// written within one slice, so every sample is one the state really had — the exposition as a
// whole is not one instant, as with any Prometheus client library.
class Metrics : public StateListener {
 public:
  explicit Metrics(MetricsOptions options);

  // Renders the whole exposition at `now` (epoch seconds, the receiver's clock), taking the state's
  // read lock in slices; the caller must not hold it. `state` is the SharedState this listener is
  // attached to. `openmetrics` selects OpenMetrics 1.0.0 (kOpenMetricsContentType: counter families
  // named without _total, `# EOF` at the end) instead of Prometheus text 0.0.4. `stats`, if given,
  // receives the slice count and the longest hold.
  std::string Render(SharedState& state, const IngestStats& ingest, const std::vector<QueueLength>& queues, double now,
                     bool openmetrics, RenderStats* stats = nullptr) const;

  // Counts the event in each enabled set and observes runtime / queue wait / end-to-end latency.
  // Builds label strings only the first time a label combination is seen.
  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  // Gives the worker its hostname label slot (worker gauges themselves are read at render time).
  void OnWorkerEvent(const ClusterState& state, const Worker& worker, const Event& ev) override;

  const MetricsOptions& options() const { return options_; }

 private:
  // Per render: each tracked worker's gauges, copied out of the state (metrics_render.cc).
  struct WorkerRow {
    std::string label;  // hostname, escaped (its slot's text, or escaped now when it has none)
    bool folded;        // past the worker cap: summed into the worker="other" line
    bool alive;
    uint32_t executing;  // STARTED (or custom-state) tasks, counted from Worker::unfinished
    int64_t active;      // from the last heartbeat
  };
  struct RenderView;

  // ---- ingest side (metrics.cc)
  uint32_t FlowerPairFor(uint32_t host_slot, uint32_t task_slot);
  uint32_t CelerySeriesFor(uint32_t task_slot, uint32_t host_slot, uint32_t queue_slot);
  void CountFlower(const Task& t, const Event& ev, uint32_t host_slot, uint32_t task_slot, bool eta);
  void CountCelery(const ClusterState& state, const Task& t, const Event& ev, uint32_t host_slot, uint32_t task_slot);
  void CountStalk(const Task& t, const Event& ev, TaskState previous, uint32_t task_slot, bool eta);

  // ---- render side
  // Every method taking a SlicedReadLock may release it between series (see Render).
  RenderView BuildView(SlicedReadLock& lock, double now) const;
  bool TaskFresh(uint32_t task_slot, double now) const;
  template <typename ValueFn>
  static void WorkerGauge(ExpositionWriter& w, const RenderView& view, std::string_view key, ValueFn value);
  void RenderFlower(ExpositionWriter& w, SlicedReadLock& lock, const RenderView& view, double now) const;
  void RenderCelery(ExpositionWriter& w, SlicedReadLock& lock, const RenderView& view,
                    const std::vector<QueueLength>& queues) const;
  void RenderStalk(ExpositionWriter& w, SlicedReadLock& lock, const IngestStats& ingest) const;

  MetricsOptions options_;
  std::vector<double> bounds_;          // histogram bounds, ascending, +Inf excluded
  std::vector<std::string> le_values_;  // their `le` spellings, then "+Inf"
  LabelSpace tasks_;                    // task / name
  LabelSpace hosts_;                    // worker / hostname (workers and task-sent clients)
  LabelSpace queues_;                   // queue_name
  LabelSpace exceptions_;               // exception (class name)
  LabelSpace types_;                    // type of custom task-xyz events
  std::vector<detail::FlowerPair> flower_;
  absl::flat_hash_map<uint64_t, uint32_t> flower_index_;  // (host slot << 32 | task slot) -> flower_
  std::vector<detail::CelerySeries> celery_;
  absl::flat_hash_map<detail::CeleryKey, uint32_t> celery_index_;
  std::vector<detail::TaskNameSeries> by_task_;  // by task slot
  mutable std::atomic<size_t> size_hint_{0};     // last render's size, to reserve once
};

}  // namespace stalk
