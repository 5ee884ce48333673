// Stalk — Celery monitoring server.
// Metrics, render side: the exposition of the Flower and celery-exporter sets. Counters and
// histograms come from what the callbacks accumulated; every gauge is computed here from the cluster
// state, so none can drift: liveness from heartbeat expiry at `now`, executing/prefetched from each
// worker's set of unfinished tasks. Offline workers keep their worker-level series (online 0,
// executing 0) until the state forgets them; their per-(worker, task) gauges are dropped.
// The state's read lock is held in slices (SlicedReadLock): worker gauges are copied out in a first
// pass, series are read by index between Yields, and what needs no state is written unlocked.
#include <algorithm>

#include "common/ingest_stats.h"
#include "metrics/exposition_writer.h"
#include "metrics/metrics.h"
#include "metrics/sliced_read_lock.h"
#include "state/cluster_state.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

// Sample values of Flower's `type` label, by EventKind.
constexpr std::array<std::string_view, detail::kStdTaskEvents> kTaskEventTypes = {
    "task-sent",   "task-received", "task-started", "task-succeeded",
    "task-failed", "task-retried",  "task-revoked", "task-rejected"};

// celery-exporter's counters, in its order.
struct CeleryCounter {
  EventKind kind;
  std::string_view family;
  std::string_view help;
};
constexpr std::array<CeleryCounter, 8> kCeleryCounters = {{
    {EventKind::kTaskSent, "celery_task_sent", "task-sent events: a client published the task."},
    {EventKind::kTaskReceived, "celery_task_received", "task-received events: a worker took the task."},
    {EventKind::kTaskStarted, "celery_task_started", "task-started events: a worker began executing the task."},
    {EventKind::kTaskSucceeded, "celery_task_succeeded", "task-succeeded events."},
    {EventKind::kTaskFailed, "celery_task_failed", "task-failed events, by exception class."},
    {EventKind::kTaskRejected, "celery_task_rejected",
     "task-rejected events: the worker rejected the task (requeued or dead-lettered)."},
    {EventKind::kTaskRevoked, "celery_task_revoked", "task-revoked events."},
    {EventKind::kTaskRetried, "celery_task_retried", "task-retried events: the task failed and will be retried."},
}};

bool Executing(TaskState s) { return s == TaskState::kStarted || s == TaskState::kCustom; }

// Free room ensured in the output buffer before each read-lock hold: more than one slice writes
// (0.3 ms at ~1 GB/s is ~300 KB), so the buffer never grows — a copy of up to the whole exposition,
// tens of ms for a big cluster — while the lock is held.
constexpr size_t kSliceSpareBytes = size_t{1} << 20;

}  // namespace

struct Metrics::RenderView {
  std::vector<WorkerRow> rows;         // every worker the state tracks, by hostname
  std::vector<uint8_t> alive_by_slot;  // host slot -> a live worker renders under it
  std::vector<uint32_t> prefetched;    // by flower_ pair: RECEIVED tasks without ETA

  // Slots and pairs created after the view was built (between slices) have no live worker yet as
  // far as this render knows, and nothing prefetched.
  bool Alive(uint32_t host_slot) const { return host_slot < alive_by_slot.size() && alive_by_slot[host_slot]; }
  uint32_t Prefetched(size_t pair) const { return pair < prefetched.size() ? prefetched[pair] : 0; }
};

Metrics::RenderView Metrics::BuildView(SlicedReadLock& lock, double now) const {
  lock.Acquire();
  // Worker ids first (a flat copy), then one worker per unit of work: the map may change between
  // slices, so it is not iterated across a Yield. A worker gone by its turn is left out.
  std::vector<uint32_t> ids;
  ids.reserve(lock.state().workers().size());
  for (const auto& [id, w] : lock.state().workers()) {
    ids.push_back(id);
  }
  RenderView v;
  v.rows.reserve(ids.size());
  for (const uint32_t id : ids) {
    lock.Yield();
    const ClusterState& state = lock.state();
    const auto it = state.workers().find(id);
    if (it == state.workers().end()) {
      continue;
    }
    const Worker& w = it->second;
    const uint32_t slot = hosts_.Resolve(id, w.hostname);
    WorkerRow& row = v.rows.emplace_back();
    if (slot != LabelSpace::kNone) {
      row.label.assign(hosts_.escaped(slot));
    } else {
      AppendEscapedLabelValue(row.label, w.hostname);  // attached after the worker was first seen
    }
    row.folded = slot != LabelSpace::kNone && slot == hosts_.other_slot();
    row.alive = state.IsAlive(w, now);
    row.executing = 0;
    row.active = row.alive && w.active > 0 ? w.active : 0;
    if (!row.alive) {
      continue;  // its unfinished tasks are lost, not executing or prefetched
    }
    if (slot != LabelSpace::kNone) {
      if (v.alive_by_slot.size() <= slot) {
        v.alive_by_slot.resize(hosts_.size(), 0);
      }
      v.alive_by_slot[slot] = 1;
    }
    if (!options_.flower_compat) {
      continue;
    }
    // One worker's unfinished set is counted within one slice (it is bounded by its prefetch
    // limit: concurrency x prefetch multiplier, plus ETA tasks).
    for (uint64_t seq : w.unfinished) {
      const Task* t = state.TaskBySeq(seq);
      if (t == nullptr || t->lost) {
        continue;  // lost: flagged when the worker went offline; a restarted worker never reports them
      }
      if (Executing(t->state)) {
        ++row.executing;
      } else if (t->state == TaskState::kReceived && (t->eta.is_null() || t->eta.view().empty()) &&
                 slot != LabelSpace::kNone) {
        const uint32_t task_slot = tasks_.Resolve(t->name, state.Name(t->name));
        if (task_slot == LabelSpace::kNone) {
          continue;
        }
        auto pair = flower_index_.find((uint64_t{slot} << 32) | task_slot);
        if (pair != flower_index_.end()) {
          if (v.prefetched.size() <= pair->second) {
            v.prefetched.resize(flower_.size(), 0);
          }
          ++v.prefetched[pair->second];
        }
      }
    }
  }
  lock.Release();
  std::sort(v.rows.begin(), v.rows.end(), [](const WorkerRow& a, const WorkerRow& b) { return a.label < b.label; });
  return v;
}

bool Metrics::TaskFresh(uint32_t task_slot, double now) const {
  return options_.task_name_ttl_seconds <= 0 || now - tasks_.last_seen(task_slot) <= options_.task_name_ttl_seconds;
}

std::string Metrics::Render(SharedState& shared, const IngestStats& ingest, const std::vector<QueueLength>& queues,
                            double now, bool openmetrics, RenderStats* stats) const {
  const size_t hint = size_hint_.load(std::memory_order_relaxed);
  ExpositionWriter w(openmetrics, hint + hint / 8 + 4096);  // sized (and its pages touched) unlocked
  auto grow = [&w] { w.ReserveSpare(kSliceSpareBytes); };
  SlicedReadLock lock(shared, options_.render_slice_seconds, grow);
  if (options_.flower_compat || options_.celery_exporter_compat) {
    const RenderView view = BuildView(lock, now);
    if (options_.flower_compat) {
      RenderFlower(w, lock, view, now);
    }
    if (options_.celery_exporter_compat) {
      RenderCelery(w, lock, view, queues);
    }
  }
  RenderStalk(w, lock, ingest);
  lock.Release();
  if (stats != nullptr) {
    stats->slices = lock.slices();
    stats->longest_hold_seconds = lock.longest_hold_seconds();
    stats->holds_over_1ms = lock.holds_over_1ms();
  }
  std::string out = w.Finish();
  size_hint_.store(out.size(), std::memory_order_relaxed);
  return out;
}

// Writes one worker-level gauge from the copied rows (no lock needed): a line per worker (label
// `key`), workers folded past the cap summed into one "other" line.
template <typename ValueFn>
void Metrics::WorkerGauge(ExpositionWriter& w, const RenderView& view, std::string_view key, ValueFn value) {
  uint64_t other = 0;
  bool folded = false;
  for (const WorkerRow& r : view.rows) {
    if (r.folded) {
      other += value(r);
      folded = true;
      continue;
    }
    w.Open();
    w.Label(key, r.label);
    w.Close(uint64_t{value(r)});
  }
  if (folded) {
    w.Open();
    w.Label(key, LabelSpace::kOther);
    w.Close(other);
  }
}

void Metrics::RenderFlower(ExpositionWriter& w, SlicedReadLock& lock, const RenderView& view, double now) const {
  // Each loop re-reads flower_.size() (pairs may be added between slices) and takes no reference
  // across a Yield.
  lock.Acquire();
  w.Family("flower_events", MetricType::kCounter, "Number of events");
  for (size_t i = 0; i < flower_.size(); ++i) {
    lock.Yield();
    const detail::FlowerPair& p = flower_[i];
    for (size_t k = 0; k < detail::kStdTaskEvents; ++k) {
      if (p.events[k] == 0) {
        continue;
      }
      w.Open();
      w.Labels(p.labels);
      w.Label("type", kTaskEventTypes[k]);
      w.Close(p.events[k]);
    }
    for (const auto& [type_slot, count] : p.custom_events) {
      w.Open();
      w.Labels(p.labels);
      w.Label("type", types_.escaped(type_slot));
      w.Close(count);
    }
  }

  w.Family("flower_task_runtime_seconds", MetricType::kHistogram, "Task runtime");
  for (size_t i = 0; i < flower_.size(); ++i) {
    lock.Yield();
    const detail::FlowerPair& p = flower_[i];
    if (p.runtime.count > 0) {
      w.HistogramSeries(p.labels, p.runtime, le_values_);
    }
  }

  w.Family("flower_task_prefetch_time_seconds", MetricType::kGauge,
           "The time the task spent waiting at the celery worker to be executed.");
  for (size_t i = 0; i < flower_.size(); ++i) {
    lock.Yield();
    const detail::FlowerPair& p = flower_[i];
    if (p.has_prefetch_time && view.Alive(p.worker) && TaskFresh(p.task, now)) {
      w.Open();
      w.Labels(p.labels);
      w.Close(p.prefetch_time);
    }
  }

  w.Family("flower_worker_prefetched_tasks", MetricType::kGauge,
           "Number of tasks of given type prefetched at a worker");
  for (size_t i = 0; i < flower_.size(); ++i) {
    lock.Yield();
    const detail::FlowerPair& p = flower_[i];
    const uint32_t prefetched = view.Prefetched(i);
    if (p.prefetch_series && view.Alive(p.worker) && (prefetched > 0 || TaskFresh(p.task, now))) {
      w.Open();
      w.Labels(p.labels);
      w.Close(uint64_t{prefetched});
    }
  }
  lock.Release();

  w.Family("flower_worker_online", MetricType::kGauge, "Worker online status");
  WorkerGauge(w, view, "worker", [](const WorkerRow& r) { return uint64_t{r.alive}; });
  w.Family("flower_worker_number_of_currently_executing_tasks", MetricType::kGauge,
           "Number of tasks currently executing at a worker");
  WorkerGauge(w, view, "worker", [](const WorkerRow& r) { return uint64_t{r.executing}; });
}

void Metrics::RenderCelery(ExpositionWriter& w, SlicedReadLock& lock, const RenderView& view,
                           const std::vector<QueueLength>& queues) const {
  lock.Acquire();
  for (const CeleryCounter& c : kCeleryCounters) {
    const auto k = static_cast<size_t>(c.kind);
    w.Family(c.family, MetricType::kCounter, c.help);
    for (size_t i = 0; i < celery_.size(); ++i) {
      lock.Yield();
      const detail::CelerySeries& s = celery_[i];
      if (c.kind != EventKind::kTaskFailed) {
        if (s.all_visible || s.counts[k] > 0) {
          w.Open();
          w.Labels(s.labels);
          w.Close(s.counts[k]);
        }
        continue;
      }
      if (s.blank_exception) {
        w.Open();
        w.Labels(s.labels);
        w.Label("exception", "");
        w.Close(uint64_t{0});
      }
      for (const auto& [exc_slot, count] : s.failed_by_exception) {
        w.Open();
        w.Labels(s.labels);
        w.Label("exception", exceptions_.escaped(exc_slot));
        w.Close(count);
      }
    }
  }

  w.Family("celery_task_runtime", MetricType::kHistogram, "Runtime of succeeded tasks, in seconds.");
  for (size_t i = 0; i < celery_.size(); ++i) {
    lock.Yield();
    const detail::CelerySeries& s = celery_[i];
    if (s.runtime.count > 0) {
      w.HistogramSeries(s.labels, s.runtime, le_values_);
    }
  }
  lock.Release();

  w.Family("celery_worker_up", MetricType::kGauge, "1 while the worker's heartbeats arrive in time, else 0.");
  WorkerGauge(w, view, "hostname", [](const WorkerRow& r) { return uint64_t{r.alive}; });
  w.Family("celery_worker_tasks_active", MetricType::kGauge,
           "Tasks the worker reported executing in its last heartbeat (0 when offline).");
  WorkerGauge(w, view, "hostname", [](const WorkerRow& r) { return static_cast<uint64_t>(r.active); });

  // Queue gauges: one line per distinct queue name the transport measured.
  std::vector<const QueueLength*> distinct;
  distinct.reserve(queues.size());
  for (const QueueLength& q : queues) {
    const bool seen =
        std::any_of(distinct.begin(), distinct.end(), [&](const QueueLength* d) { return d->name == q.name; });
    if (!seen) {
      distinct.push_back(&q);
    }
  }
  struct QueueGauge {
    std::string_view family, help;
    int64_t QueueLength::*field;
  };
  static constexpr QueueGauge kQueueGauges[] = {
      {"celery_queue_length", "Messages waiting in the broker queue.", &QueueLength::messages},
      {"celery_active_consumer_count", "Consumers attached to the broker queue.", &QueueLength::consumers},
      {"celery_active_worker_count", "Workers consuming from the queue.", &QueueLength::workers},
      {"celery_active_process_count", "Pool processes of the workers consuming from the queue.",
       &QueueLength::processes},
  };
  for (const QueueGauge& g : kQueueGauges) {
    w.Family(g.family, MetricType::kGauge, g.help);
    for (const QueueLength* q : distinct) {
      const int64_t value = q->*g.field;
      if (value < 0) {
        continue;  // unknown for this broker
      }
      w.Open();
      w.LabelRaw("queue_name", q->name);
      w.Close(static_cast<uint64_t>(value));
    }
  }
}

}  // namespace stalk
