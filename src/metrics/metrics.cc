// Stalk — Celery monitoring server.
// Metrics, ingest side: turns each applied task event into counter increments and histogram
// observations for the three metric sets. Runs on the ingest thread under the state's write lock, so
// it must stay cheap: a handful of hash lookups per event, label strings built only at first sight.
#include "metrics/metrics.h"

#include <chrono>
#include <string_view>

#include "common/clock.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

// Caps for labels MetricsOptions does not expose. Queues and custom event types are few in any sane
// deployment; exception classes are bounded by the code base. The caps only guard against a client
// inventing a new value per message.
constexpr size_t kMaxQueueNames = 256;
constexpr size_t kMaxExceptionClasses = 256;
constexpr size_t kMaxCustomEventTypes = 64;

// Queue label when the task's queue is unknown: celery-exporter's default (Celery's default queue).
constexpr std::string_view kDefaultQueue = "celery";

// Time of an event, for "last seen" bookkeeping: its own timestamp (epoch seconds, as ClusterState
// keeps it), or the wall clock when it carries none.
double EventTime(const ClusterState& /*state*/, const Event& ev) {
  if (ev.has_timestamp) {
    return ev.timestamp;
  }
  return UnixSeconds();
}

bool IsWordChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '_' || u >= 0x80;
}

// celery-exporter's exception label: the class name leading `repr(exc)` ("ValueError('x')" ->
// "ValueError"), or "UnknownException" when the text does not start with `Name(`.
std::string_view ExceptionClass(std::string_view repr) {
  size_t n = 0;
  while (n < repr.size() && IsWordChar(repr[n])) {
    ++n;
  }
  if (n == 0 || n == repr.size() || repr[n] != '(') {
    return "UnknownException";
  }
  return repr.substr(0, n);
}

void AppendLabel(std::string& out, std::string_view key, std::string_view escaped) {
  if (!out.empty()) {
    out += ',';
  }
  out += key;
  out += "=\"";
  out += escaped;
  out += '"';
}

}  // namespace

Metrics::Metrics(MetricsOptions options)
    : options_(std::move(options)),
      bounds_(NormalizeBounds(options_.runtime_buckets)),
      tasks_(options_.max_task_names),
      hosts_(options_.max_workers, /*secondary_cap=*/options_.max_workers),
      queues_(kMaxQueueNames),
      exceptions_(kMaxExceptionClasses),
      types_(kMaxCustomEventTypes) {
  for (double b : bounds_) {
    le_values_.push_back(FormatBound(b));
  }
  le_values_.push_back("+Inf");
}

uint32_t Metrics::FlowerPairFor(uint32_t host_slot, uint32_t task_slot) {
  const uint64_t key = (uint64_t{host_slot} << 32) | task_slot;
  auto [it, inserted] = flower_index_.try_emplace(key, static_cast<uint32_t>(flower_.size()));
  if (inserted) {
    detail::FlowerPair& p = flower_.emplace_back();
    p.worker = host_slot;
    p.task = task_slot;
    AppendLabel(p.labels, "worker", hosts_.escaped(host_slot));
    AppendLabel(p.labels, "task", tasks_.escaped(task_slot));
  }
  return it->second;
}

uint32_t Metrics::CelerySeriesFor(uint32_t task_slot, uint32_t host_slot, uint32_t queue_slot) {
  const detail::CeleryKey key{task_slot, host_slot, queue_slot};
  auto [it, inserted] = celery_index_.try_emplace(key, static_cast<uint32_t>(celery_.size()));
  if (inserted) {
    detail::CelerySeries& s = celery_.emplace_back();
    AppendLabel(s.labels, "name", tasks_.escaped(task_slot));
    AppendLabel(s.labels, "hostname", hosts_.escaped(host_slot));
    AppendLabel(s.labels, "queue_name", queues_.escaped(queue_slot));
  }
  return it->second;
}

void Metrics::OnTaskEvent(const ClusterState& state, const Task& t, const Event& ev, TaskState previous) {
  const double seen = EventTime(state, ev);
  const uint32_t task_slot = tasks_.SlotFor(t.name, state.Name(t.name));
  tasks_.Touch(task_slot, seen);
  // The event's own hostname, as Flower and celery-exporter label it: the client for task-sent.
  uint32_t host_id = kNoId;
  if (!ev.hostname.empty()) {
    host_id = ev.kind == EventKind::kTaskSent ? t.client : t.worker;
  }
  // task-sent clients ("gen<pid>@web", a new name per process) have their own cap, so their churn
  // can never fold real workers into "other".
  const auto pool = ev.kind == EventKind::kTaskSent ? LabelSpace::Pool::kSecondary : LabelSpace::Pool::kMain;
  const uint32_t host_slot = hosts_.SlotFor(host_id, ev.hostname, pool);
  hosts_.Touch(host_slot, seen);
  // Flower leaves tasks with an ETA out of the prefetch gauges: they wait for their time, not a slot.
  const bool eta = !t.eta.is_null() && !t.eta.view().empty();

  if (options_.flower_compat) {
    CountFlower(t, ev, host_slot, task_slot, eta);
  }
  if (options_.celery_exporter_compat && ev.kind != EventKind::kTaskCustom) {
    CountCelery(state, t, ev, host_slot, task_slot);
  }
  CountStalk(t, ev, previous, task_slot, eta);
}

void Metrics::OnWorkerEvent(const ClusterState& state, const Worker& /*worker*/, const Event& ev) {
  // Only gives the worker its label slot (and counts it against the cap) in arrival order; the
  // worker gauges themselves are read from the state at render time.
  const uint32_t slot = hosts_.SlotFor(state.FindString(ev.hostname), ev.hostname);
  hosts_.Touch(slot, EventTime(state, ev));
}

void Metrics::CountFlower(const Task& t, const Event& ev, uint32_t host_slot, uint32_t task_slot, bool eta) {
  detail::FlowerPair& p = flower_[FlowerPairFor(host_slot, task_slot)];
  if (ev.kind == EventKind::kTaskCustom) {
    const uint32_t type_slot = types_.SlotFor(ev.type);
    bool found = false;
    for (auto& [slot, count] : p.custom_events) {
      if (slot == type_slot) {
        ++count, found = true;
        break;
      }
    }
    if (!found) {
      p.custom_events.emplace_back(type_slot, 1);
    }
  } else {
    ++p.events[static_cast<size_t>(ev.kind)];
  }
  // Flower observes any event carrying a runtime (task-succeeded in Celery 5).
  if (ev.runtime && *ev.runtime > 0) {
    p.runtime.Observe(bounds_, *ev.runtime);
  }
  if (eta) {
    return;
  }
  if (ev.kind == EventKind::kTaskReceived) {
    p.prefetch_series = true;
  } else if (ev.kind == EventKind::kTaskStarted && t.started > 0 && t.received > 0) {
    p.prefetch_time = t.started >= t.received ? t.started - t.received : 0;
    p.has_prefetch_time = true;
  }
}

void Metrics::CountCelery(const ClusterState& state, const Task& t, const Event& ev, uint32_t host_slot,
                          uint32_t task_slot) {
  // celery-exporter labels the queue from the task-sent event's `queue` (routing_key as a fallback
  // here: it names the queue for Celery's direct routing), else Celery's default queue "celery".
  uint32_t queue_slot;
  if (t.queue != kNoId) {
    queue_slot = queues_.SlotFor(t.queue, state.Name(t.queue));
  } else if (t.routing_key != kNoId) {
    queue_slot = queues_.SlotFor(t.routing_key, state.Name(t.routing_key));
  } else {
    queue_slot = queues_.SlotFor(kDefaultQueue);
  }
  detail::CelerySeries& s = celery_[CelerySeriesFor(task_slot, host_slot, queue_slot)];
  ++s.counts[static_cast<size_t>(ev.kind)];
  if (ev.kind != EventKind::kTaskSent) {
    s.all_visible = true;
  }
  if (ev.kind == EventKind::kTaskFailed) {
    const std::string_view repr = ev.exception.has_value() ? ev.exception.value : t.exception.view();
    const uint32_t exc = exceptions_.SlotFor(ExceptionClass(repr));
    bool found = false;
    for (auto& [slot, count] : s.failed_by_exception) {
      if (slot == exc) {
        ++count, found = true;
        break;
      }
    }
    if (!found) {
      s.failed_by_exception.emplace_back(exc, 1);
    }
  } else if (ev.kind != EventKind::kTaskSent) {
    s.blank_exception = true;
  }
  if (ev.kind == EventKind::kTaskSucceeded) {
    const double runtime = ev.runtime ? *ev.runtime : t.runtime;
    if (runtime >= 0) {
      s.runtime.Observe(bounds_, runtime);
    }
  }
}

void Metrics::CountStalk(const Task& t, const Event& ev, TaskState previous, uint32_t task_slot, bool eta) {
  if (by_task_.size() <= task_slot) {
    by_task_.resize(task_slot + 1);
  }
  detail::TaskNameSeries& s = by_task_[task_slot];
  // Queue wait at the worker: received -> started, without ETA tasks (their wait is by design).
  if (ev.kind == EventKind::kTaskStarted && !eta && t.received > 0 && t.started >= t.received) {
    s.queue_wait.Observe(bounds_, t.started - t.received);
  }
  // End to end: sent -> succeeded/failed, observed once, by whichever of the two events comes last.
  // Differences below 0 are client/worker clock skew, not latency: not observed.
  const bool finished_now =
      (ev.kind == EventKind::kTaskSucceeded || ev.kind == EventKind::kTaskFailed) && !IsFinal(previous);
  const bool sent_late =
      ev.kind == EventKind::kTaskSent && (t.state == TaskState::kSuccess || t.state == TaskState::kFailure);
  if ((finished_now || sent_late) && t.sent > 0) {
    const bool failed = finished_now ? ev.kind == EventKind::kTaskFailed : t.state == TaskState::kFailure;
    const double end = failed ? t.failed : t.succeeded;
    if (end > 0 && end >= t.sent) {
      s.e2e_latency.Observe(bounds_, end - t.sent);
    }
  }
}

}  // namespace stalk
