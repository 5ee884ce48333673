// Stalk — Celery monitoring server.
// Metrics, render side: the exposition of the Flower and celery-exporter sets. Counters and
// histograms come from what the callbacks accumulated; every gauge is computed here from the cluster
// state, so none can drift: liveness from heartbeat expiry at `now`, executing/prefetched from each
// worker's set of unfinished tasks. Offline workers keep their worker-level series (online 0,
// executing 0) until the state forgets them; their per-(worker, task) gauges are dropped.
#include <algorithm>

#include "common/ingest_stats.h"
#include "metrics/exposition_writer.h"
#include "metrics/metrics.h"
#include "state/cluster_state.h"

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

}  // namespace

struct Metrics::RenderView {
  std::vector<WorkerRow> rows;           // every worker the state tracks, by hostname
  std::vector<uint8_t> alive_by_slot;    // host slot -> a live worker renders under it
  std::vector<uint32_t> executing;       // by row: STARTED (or custom-state) tasks
  std::vector<uint32_t> prefetched;      // by flower_ pair: RECEIVED tasks without ETA
};

Metrics::RenderView Metrics::BuildView(const ClusterState& state, double now) const {
  RenderView v;
  v.rows.reserve(state.workers().size());
  for (const auto& [id, w] : state.workers()) {
    const uint32_t slot = hosts_.Resolve(id, w.hostname);
    v.rows.push_back(WorkerRow{&w, slot, state.IsAlive(w, now)});
  }
  std::sort(v.rows.begin(), v.rows.end(),
            [](const WorkerRow& a, const WorkerRow& b) { return a.worker->hostname < b.worker->hostname; });
  v.alive_by_slot.assign(hosts_.size(), 0);
  for (const WorkerRow& r : v.rows) {
    if (r.alive && r.slot != LabelSpace::kNone) {
      v.alive_by_slot[r.slot] = 1;
    }
  }
  if (!options_.flower_compat) {
    return v;
  }
  v.executing.assign(v.rows.size(), 0);
  v.prefetched.assign(flower_.size(), 0);
  for (size_t i = 0; i < v.rows.size(); ++i) {
    const WorkerRow& r = v.rows[i];
    if (!r.alive) {
      continue;  // its unfinished tasks are lost, not executing
    }
    for (uint64_t seq : r.worker->unfinished) {
      const Task* t = state.TaskBySeq(seq);
      if (t == nullptr || t->lost) {
        continue;  // lost: flagged when the worker went offline; a restarted worker never reports them
      }
      if (Executing(t->state)) {
        ++v.executing[i];
      } else if (t->state == TaskState::kReceived && (t->eta.is_null() || t->eta.view().empty()) &&
                 r.slot != LabelSpace::kNone) {
        const uint32_t task_slot = tasks_.Resolve(t->name, state.Name(t->name));
        if (task_slot == LabelSpace::kNone) {
          continue;
        }
        auto it = flower_index_.find((uint64_t{r.slot} << 32) | task_slot);
        if (it != flower_index_.end()) {
          ++v.prefetched[it->second];
        }
      }
    }
  }
  return v;
}

bool Metrics::TaskFresh(uint32_t task_slot, double now) const {
  return options_.task_name_ttl_seconds <= 0 || now - tasks_.last_seen(task_slot) <= options_.task_name_ttl_seconds;
}

void Metrics::WriteWorkerLabel(ExpositionWriter& w, std::string_view key, const WorkerRow& row) const {
  if (row.slot != LabelSpace::kNone) {
    w.Label(key, hosts_.escaped(row.slot));
  } else {
    w.LabelRaw(key, row.worker->hostname);  // attached after the worker was first seen: escape now
  }
}

std::string Metrics::Render(const ClusterState& state, const IngestStats& ingest,
                            const std::vector<QueueLength>& queues, double now, bool openmetrics) const {
  const size_t hint = size_hint_.load(std::memory_order_relaxed);
  ExpositionWriter w(openmetrics, hint + hint / 8 + 4096);
  if (options_.flower_compat || options_.celery_exporter_compat) {
    const RenderView view = BuildView(state, now);
    if (options_.flower_compat) {
      RenderFlower(w, view, now);
    }
    if (options_.celery_exporter_compat) {
      RenderCelery(w, view, queues);
    }
  }
  RenderStalk(w, state, ingest);
  std::string out = w.Finish();
  size_hint_.store(out.size(), std::memory_order_relaxed);
  return out;
}

// Writes one worker-level gauge: a line per worker (label `key`), workers folded past the cap summed
// into one "other" line.
template <typename ValueFn>
void Metrics::WorkerGauge(ExpositionWriter& w, const RenderView& view, std::string_view key, ValueFn value) const {
  const uint32_t other_slot = hosts_.other_slot();
  uint64_t other = 0;
  bool folded = false;
  for (size_t i = 0; i < view.rows.size(); ++i) {
    const WorkerRow& r = view.rows[i];
    if (r.slot != LabelSpace::kNone && r.slot == other_slot) {
      other += value(i);
      folded = true;
      continue;
    }
    w.Open();
    WriteWorkerLabel(w, key, r);
    w.Close(uint64_t{value(i)});
  }
  if (folded) {
    w.Open();
    w.Label(key, hosts_.escaped(other_slot));
    w.Close(other);
  }
}

void Metrics::RenderFlower(ExpositionWriter& w, const RenderView& view, double now) const {
  w.Family("flower_events", MetricType::kCounter, "Number of events");
  for (const detail::FlowerPair& p : flower_) {
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
  for (const detail::FlowerPair& p : flower_) {
    if (p.runtime.count > 0) {
      w.HistogramSeries(p.labels, p.runtime, le_values_);
    }
  }

  w.Family("flower_task_prefetch_time_seconds", MetricType::kGauge,
           "The time the task spent waiting at the celery worker to be executed.");
  for (const detail::FlowerPair& p : flower_) {
    if (p.has_prefetch_time && view.alive_by_slot[p.worker] && TaskFresh(p.task, now)) {
      w.Open();
      w.Labels(p.labels);
      w.Close(p.prefetch_time);
    }
  }

  w.Family("flower_worker_prefetched_tasks", MetricType::kGauge,
           "Number of tasks of given type prefetched at a worker");
  for (size_t i = 0; i < flower_.size(); ++i) {
    const detail::FlowerPair& p = flower_[i];
    if (p.prefetch_series && view.alive_by_slot[p.worker] && (view.prefetched[i] > 0 || TaskFresh(p.task, now))) {
      w.Open();
      w.Labels(p.labels);
      w.Close(uint64_t{view.prefetched[i]});
    }
  }

  w.Family("flower_worker_online", MetricType::kGauge, "Worker online status");
  WorkerGauge(w, view, "worker", [&](size_t i) { return uint64_t{view.rows[i].alive}; });
  w.Family("flower_worker_number_of_currently_executing_tasks", MetricType::kGauge,
           "Number of tasks currently executing at a worker");
  WorkerGauge(w, view, "worker", [&](size_t i) { return uint64_t{view.executing[i]}; });
}

void Metrics::RenderCelery(ExpositionWriter& w, const RenderView& view, const std::vector<QueueLength>& queues) const {
  for (const CeleryCounter& c : kCeleryCounters) {
    const auto k = static_cast<size_t>(c.kind);
    w.Family(c.family, MetricType::kCounter, c.help);
    for (const detail::CelerySeries& s : celery_) {
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
  for (const detail::CelerySeries& s : celery_) {
    if (s.runtime.count > 0) {
      w.HistogramSeries(s.labels, s.runtime, le_values_);
    }
  }

  w.Family("celery_worker_up", MetricType::kGauge, "1 while the worker's heartbeats arrive in time, else 0.");
  WorkerGauge(w, view, "hostname", [&](size_t i) { return uint64_t{view.rows[i].alive}; });
  w.Family("celery_worker_tasks_active", MetricType::kGauge,
           "Tasks the worker reported executing in its last heartbeat (0 when offline).");
  WorkerGauge(w, view, "hostname", [&](size_t i) {
    const WorkerRow& r = view.rows[i];
    return r.alive && r.worker->active > 0 ? static_cast<uint64_t>(r.worker->active) : uint64_t{0};
  });

  // Queue gauges: one line per distinct queue name the transport measured.
  std::vector<const QueueLength*> distinct;
  distinct.reserve(queues.size());
  for (const QueueLength& q : queues) {
    const bool seen = std::any_of(distinct.begin(), distinct.end(), [&](const QueueLength* d) { return d->name == q.name; });
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
