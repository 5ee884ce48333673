// Stalk — Celery monitoring server.
// Metrics, render side: Stalk's own families — per-task-name latency histograms, ingest health from
// IngestStats, state size from ClusterState, process memory, build info, label overflows. Only the
// histograms and a handful of numbers are read under the state's read lock.
#include "common/ingest_stats.h"
#include "metrics/exposition_writer.h"
#include "metrics/metrics.h"
#include "metrics/process_memory.h"
#include "metrics/sliced_read_lock.h"
#include "protocol/reject_reason.h"
#include "state/cluster_state.h"

#ifndef STALK_VERSION
#define STALK_VERSION "unknown"
#endif

namespace stalk {
namespace {

static_assert(static_cast<size_t>(RejectReason::kCount) <= kRejectReasonSlots,
              "IngestStats::rejected must have a slot per RejectReason");

uint64_t Load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

}  // namespace

void Metrics::RenderStalk(ExpositionWriter& w, SlicedReadLock& lock, const IngestStats& ingest) const {
  lock.Acquire();
  std::string labels;
  auto task_histograms = [&](std::string_view family, std::string_view help,
                             Histogram detail::TaskNameSeries::*member) {
    w.Family(family, MetricType::kHistogram, help);
    for (size_t slot = 0; slot < by_task_.size(); ++slot) {
      lock.Yield();
      const Histogram& h = by_task_[slot].*member;
      if (h.count == 0) {
        continue;
      }
      labels.assign("task=\"");
      labels += tasks_.escaped(static_cast<uint32_t>(slot));
      labels += '"';
      w.HistogramSeries(labels, h, le_values_);
    }
  };
  task_histograms("stalk_task_queue_wait_seconds",
                  "Time tasks waited at the worker between task-received and task-started (ETA tasks excluded).",
                  &detail::TaskNameSeries::queue_wait);
  task_histograms("stalk_task_e2e_latency_seconds",
                  "Time from task-sent to task-succeeded or task-failed, for tasks whose both events arrived.",
                  &detail::TaskNameSeries::e2e_latency);

  // The few numbers owned by the writer, read in one slice; the families are written unlocked.
  const ClusterState& state = lock.state();
  const uint64_t tasks_tracked = state.task_count();
  const uint64_t tasks_evicted = state.counters().tasks_evicted;
  const uint64_t tasks_lost = state.counters().tasks_lost;
  const uint64_t workers_tracked = state.workers().size();
  // "client" is the worker/hostname label of task-sent series, capped apart from workers.
  const std::pair<std::string_view, uint64_t> overflows[] = {
      {"task", tasks_.overflows()},
      {"worker", hosts_.overflows()},
      {"client", hosts_.overflows(LabelSpace::Pool::kSecondary)},
      {"queue_name", queues_.overflows()},
      {"exception", exceptions_.overflows()},
      {"type", types_.overflows()},
  };
  lock.Release();

  w.Family("stalk_events_ingested", MetricType::kCounter, "Events applied to the cluster state.");
  w.Open();
  w.Close(Load(ingest.events_ingested));
  w.Family("stalk_events_rejected", MetricType::kCounter, "Broker messages or events not applied, by reason.");
  for (size_t r = 0; r < static_cast<size_t>(RejectReason::kCount); ++r) {
    w.Open();
    w.Label("reason", RejectReasonName(static_cast<RejectReason>(r)));
    w.Close(Load(ingest.rejected[r]));
  }
  w.Family("stalk_broker_connected", MetricType::kGauge, "1 while the event connection to the broker is up.");
  w.Open();
  w.Close(uint64_t{ingest.broker_connected.load(std::memory_order_relaxed)});
  w.Family("stalk_broker_reconnects", MetricType::kCounter, "Successful broker connections after the first.");
  w.Open();
  w.Close(Load(ingest.reconnects));
  w.Family("stalk_broker_partial_messages_discarded", MetricType::kCounter,
           "Broker connections lost in the middle of a message; the partial message was discarded.");
  w.Open();
  w.Close(Load(ingest.partial_messages_discarded));
  w.Family("stalk_ingest_lag_seconds", MetricType::kGauge,
           "Receive time minus event timestamp of the last applied event.");
  w.Open();
  w.Close(ingest.ingest_lag_seconds.load(std::memory_order_relaxed));
  w.Family("stalk_ingest_queue_bytes", MetricType::kGauge, "Bytes waiting between the broker reader and the state.");
  w.Open();
  w.Close(Load(ingest.queue_bytes));
  w.Family("stalk_ingest_dropped", MetricType::kCounter, "Messages dropped because the ingest queue was full.");
  w.Open();
  w.Close(Load(ingest.queue_dropped));
  w.Family("stalk_shed", MetricType::kCounter,
           "Work given up while the state writer fell behind, by stage in shedding order (README \"Failure modes\"): "
           "store_events rows, custom (application) events, then whole messages when the ingest queue is full.");
  for (size_t i = 0; i < static_cast<size_t>(ShedStage::kCount); ++i) {
    const auto stage = static_cast<ShedStage>(i);
    w.Open();
    w.Label("stage", ShedStageName(stage));
    w.Close(stage == ShedStage::kQueueFull ? Load(ingest.queue_dropped) : ingest.shed.count(stage));
  }
  w.Family("stalk_shed_level", MetricType::kGauge,
           "Shedding stages in force now: 0 none, 1 store_events, 2 store_events and custom_events.");
  w.Open();
  w.Close(uint64_t{ingest.shed.level()});

  w.Family("stalk_tasks_tracked", MetricType::kGauge, "Tasks held in memory.");
  w.Open();
  w.Close(tasks_tracked);
  w.Family("stalk_tasks_evicted", MetricType::kCounter, "Tasks dropped from memory to stay under max_tasks.");
  w.Open();
  w.Close(tasks_evicted);
  w.Family("stalk_tasks_lost", MetricType::kCounter,
           "Unfinished tasks of workers that went offline (killed or heartbeat expired).");
  w.Open();
  w.Close(tasks_lost);
  w.Family("stalk_workers_tracked", MetricType::kGauge, "Workers held in memory, online or not.");
  w.Open();
  w.Close(workers_tracked);

  w.Family("stalk_process_resident_memory_bytes", MetricType::kGauge, "Resident memory of the Stalk process.");
  if (const auto rss = ResidentMemoryBytes()) {
    w.Open();
    w.Close(*rss);
  }
  w.Family("stalk_build", MetricType::kInfo, "Stalk build information.");
  w.Open();
  w.Label("version", STALK_VERSION);
  w.Close(uint64_t{1});

  w.Family("stalk_metrics_label_overflow", MetricType::kCounter,
           "Observations whose label value was folded into \"other\" by a cardinality cap, by label.");
  for (const auto& [label, count] : overflows) {
    w.Open();
    w.Label("label", label);
    w.Close(count);
  }
}

}  // namespace stalk
