// Stalk — Celery monitoring server.
// Unit tests of metrics/: a real ClusterState with Metrics attached, fed hand-built events, rendered,
// and exact series values asserted — Flower's and celery-exporter's sets, Stalk's histograms, the
// fixes for Flower's drifting gauges, escaping, cardinality caps, both text formats, and promtool.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/ingest_stats.h"
#include "metrics/exposition_writer.h"
#include "metrics/histogram.h"
#include "metrics/label_space.h"
#include "metrics/metrics.h"
#include "protocol/reject_reason.h"
#include "state/cluster_state.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

OptStr S(std::string_view v) { return OptStr{v, true, false}; }

// A task event as the decoder would produce it.
Event TaskEvent(std::string_view type, std::string_view uuid, std::string_view host, double ts) {
  Event ev;
  ev.type = type;
  ev.kind = ClassifyEventType(type);
  ev.uuid = uuid;
  ev.hostname = host;
  ev.timestamp = ts;
  ev.has_timestamp = true;
  return ev;
}

Event WorkerEvent(std::string_view type, std::string_view host, double ts, double freq = 2.0) {
  Event ev;
  ev.type = type;
  ev.kind = ClassifyEventType(type);
  ev.hostname = host;
  ev.timestamp = ts;
  ev.has_timestamp = true;
  ev.freq = freq;
  ev.active = 0;
  return ev;
}

class MetricsTest : public ::testing::Test {
 protected:
  explicit MetricsTest(MetricsOptions options = {}) : metrics_(std::move(options)) {
    state_.Write()->AddListener(&metrics_);
  }

  void Apply(const Event& ev) { state_.Write()->Apply(ev, ev.timestamp); }

  void Received(std::string_view uuid, std::string_view name, std::string_view host, double ts) {
    Event ev = TaskEvent("task-received", uuid, host, ts);
    ev.name = S(name);
    ev.args = S("()");
    ev.kwargs = S("{}");
    ev.eta = OptStr{{}, true, true};  // eta: null, as Celery sends it
    Apply(ev);
  }
  void Sent(std::string_view uuid, std::string_view name, std::string_view client, std::string_view queue, double ts) {
    Event ev = TaskEvent("task-sent", uuid, client, ts);
    ev.name = S(name);
    ev.queue = S(queue);
    ev.routing_key = S(queue);
    Apply(ev);
  }
  void Started(std::string_view uuid, std::string_view host, double ts) {
    Apply(TaskEvent("task-started", uuid, host, ts));
  }
  void Succeeded(std::string_view uuid, std::string_view host, double ts, double runtime) {
    Event ev = TaskEvent("task-succeeded", uuid, host, ts);
    ev.runtime = runtime;
    ev.result = S("4");
    Apply(ev);
  }
  void Failed(std::string_view uuid, std::string_view host, double ts, std::string_view exception) {
    Event ev = TaskEvent("task-failed", uuid, host, ts);
    ev.exception = S(exception);
    ev.traceback = S("Traceback...");
    Apply(ev);
  }

  std::string Render(double now, bool openmetrics = false, const std::vector<QueueLength>& queues = {}) {
    return metrics_.Render(state_, ingest_, queues, now, openmetrics);
  }

  // The value of the sample whose name and labels are exactly `series`, or nullopt if absent.
  static std::optional<std::string> Value(const std::string& body, std::string_view series) {
    const std::string prefix = std::string(series) + " ";
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find('\n', pos);
      if (end == std::string::npos) {
        end = body.size();
      }
      std::string_view line(body.data() + pos, end - pos);
      if (line.starts_with(prefix)) {
        return std::string(line.substr(prefix.size()));
      }
      pos = end + 1;
    }
    return std::nullopt;
  }
  // Every sample line's name and labels, which must be unique in a valid exposition (promtool does
  // not check this). Returns the first duplicate, or "".
  static std::string FirstDuplicateSeries(const std::string& body) {
    std::set<std::string_view> seen;
    size_t pos = 0;
    while (pos < body.size()) {
      const size_t end = body.find('\n', pos);
      std::string_view line(body.data() + pos, end - pos);
      pos = end + 1;
      if (line.empty() || line[0] == '#') {
        continue;
      }
      std::string_view series = line.substr(0, line.rfind(' '));
      if (!seen.insert(series).second) {
        return std::string(series);
      }
    }
    return "";
  }
  static double Num(const std::string& body, std::string_view series) {
    auto v = Value(body, series);
    return v ? std::strtod(v->c_str(), nullptr) : std::nan("");
  }

  SharedState state_{StateOptions{}};
  Metrics metrics_;
  IngestStats ingest_;
};

// ------------------------------------------------------------------ Flower's set

TEST_F(MetricsTest, FlowerEventCountersAndRuntimeHistogram) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  Received("11111111-1111-1111-1111-111111111111", "tasks.add", "celery@w1", 1000.1);
  Started("11111111-1111-1111-1111-111111111111", "celery@w1", 1000.2);
  Succeeded("11111111-1111-1111-1111-111111111111", "celery@w1", 1000.5, 0.3);
  Received("22222222-2222-2222-2222-222222222222", "tasks.add", "celery@w1", 1000.6);
  Started("22222222-2222-2222-2222-222222222222", "celery@w1", 1000.7);
  Failed("22222222-2222-2222-2222-222222222222", "celery@w1", 1000.8, "ValueError('boom')");
  const std::string m = Render(1001);

  const std::string pair = R"(worker="celery@w1",task="tasks.add")";
  EXPECT_EQ(Value(m, "flower_events_total{" + pair + R"(,type="task-received"})"), "2");
  EXPECT_EQ(Value(m, "flower_events_total{" + pair + R"(,type="task-started"})"), "2");
  EXPECT_EQ(Value(m, "flower_events_total{" + pair + R"(,type="task-succeeded"})"), "1");
  EXPECT_EQ(Value(m, "flower_events_total{" + pair + R"(,type="task-failed"})"), "1");
  EXPECT_FALSE(Value(m, "flower_events_total{" + pair + R"(,type="task-sent"})"));

  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="0.25"})"), "0");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="0.5"})"), "1");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="10.0"})"), "1");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="+Inf"})"), "1");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_count{" + pair + "}"), "1");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_sum{" + pair + "}"), "0.3");

  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "0");
  EXPECT_EQ(Value(m, "flower_worker_prefetched_tasks{" + pair + "}"), "0");
  EXPECT_NE(m.find("# HELP flower_events_total Number of events\n# TYPE flower_events_total counter\n"),
            std::string::npos);
  EXPECT_NE(m.find("# TYPE flower_task_runtime_seconds histogram\n"), std::string::npos);
}

TEST_F(MetricsTest, TaskSentIsCountedUnderTheClientHostname) {
  Sent("33333333-3333-3333-3333-333333333333", "tasks.mul", "gen42@web", "default", 999);
  const std::string m = Render(1000);
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="gen42@web",task="tasks.mul",type="task-sent"})"), "1");
}

TEST_F(MetricsTest, PrefetchTimeIsStartedMinusReceivedAndSkipsEtaTasks) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  Received("44444444-4444-4444-4444-444444444444", "tasks.slow", "celery@w1", 1000);
  Started("44444444-4444-4444-4444-444444444444", "celery@w1", 1000.5);
  Event eta = TaskEvent("task-received", "55555555-5555-5555-5555-555555555555", "celery@w1", 1001);
  eta.name = S("tasks.later");
  eta.eta = S("2030-01-01T00:00:00+00:00");
  Apply(eta);
  Started("55555555-5555-5555-5555-555555555555", "celery@w1", 1003);
  const std::string m = Render(1003);
  EXPECT_EQ(Value(m, R"(flower_task_prefetch_time_seconds{worker="celery@w1",task="tasks.slow"})"), "0.5");
  EXPECT_FALSE(Value(m, R"(flower_task_prefetch_time_seconds{worker="celery@w1",task="tasks.later"})"));
  EXPECT_FALSE(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="tasks.later"})"));
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "2");
}

// Flower increments the gauge on task-received and decrements it only on task-started: a task revoked
// before it starts leaves it above 0 forever. Stalk counts RECEIVED tasks at render time.
TEST_F(MetricsTest, RevokedBeforeStartDoesNotLeavePrefetched) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  Received("a0000000-0000-0000-0000-000000000001", "tasks.add", "celery@w1", 1000.1);
  Received("a0000000-0000-0000-0000-000000000002", "tasks.add", "celery@w1", 1000.2);
  Received("a0000000-0000-0000-0000-000000000003", "tasks.add", "celery@w1", 1000.3);
  std::string m = Render(1000.4);
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="tasks.add"})"), "3");

  Apply(TaskEvent("task-revoked", "a0000000-0000-0000-0000-000000000001", "celery@w1", 1000.5));
  Apply(TaskEvent("task-revoked", "a0000000-0000-0000-0000-000000000002", "celery@w1", 1000.6));
  Started("a0000000-0000-0000-0000-000000000003", "celery@w1", 1000.7);
  m = Render(1001);
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="tasks.add"})"), "0");
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="celery@w1",task="tasks.add",type="task-revoked"})"), "2");
}

// Flower keeps flower_worker_online at 1 for a worker killed with SIGKILL (no worker-offline event).
TEST_F(MetricsTest, SigkilledWorkerGoesOfflineWhenHeartbeatsStop) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000, /*freq=*/2.0));
  Received("b0000000-0000-0000-0000-000000000001", "tasks.add", "celery@w1", 1000.1);
  Started("b0000000-0000-0000-0000-000000000001", "celery@w1", 1000.2);
  Received("b0000000-0000-0000-0000-000000000002", "tasks.add", "celery@w1", 1000.3);
  Event hb = WorkerEvent("worker-heartbeat", "celery@w1", 1001, 2.0);
  hb.active = 1;
  Apply(hb);
  std::string m = Render(1002);
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(celery_worker_up{hostname="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(celery_worker_tasks_active{hostname="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "1");

  // kill -9: nothing more arrives. Past 2 x freq after the last heartbeat the worker is offline.
  state_.Write()->Tick(1005.5);
  m = Render(1005.5);
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "0");
  EXPECT_EQ(Value(m, R"(celery_worker_up{hostname="celery@w1"})"), "0");
  EXPECT_EQ(Value(m, R"(celery_worker_tasks_active{hostname="celery@w1"})"), "0");
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "0");
  EXPECT_FALSE(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="tasks.add"})"));
  EXPECT_EQ(Value(m, "stalk_tasks_lost_total"), "2");

  // Restarted under the same name: its old tasks are lost, not executing or prefetched.
  Apply(WorkerEvent("worker-online", "celery@w1", 1010, 2.0));
  m = Render(1010.5);
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_worker_number_of_currently_executing_tasks{worker="celery@w1"})"), "0");
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="tasks.add"})"), "0");
}

TEST_F(MetricsTest, WorkerOfflineEventTakesEffectWithoutTick) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  Apply(WorkerEvent("worker-offline", "celery@w1", 1001));
  const std::string m = Render(1001.5);
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "0");
}

// ------------------------------------------------------------------ celery-exporter's set

TEST_F(MetricsTest, CeleryExporterCountersLabelsAndRuntime) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  const char* id = "c0000000-0000-0000-0000-000000000001";
  Sent(id, "tasks.add", "gen1@web", "default", 1000);
  Received(id, "tasks.add", "celery@w1", 1000.1);
  Started(id, "celery@w1", 1000.2);
  Succeeded(id, "celery@w1", 1000.9, 0.7);
  const char* id2 = "c0000000-0000-0000-0000-000000000002";
  Received(id2, "tasks.add", "celery@w1", 1001);  // no task-sent: queue unknown
  Started(id2, "celery@w1", 1001.1);
  Failed(id2, "celery@w1", 1001.2, "ValueError('x')");
  const std::string m = Render(1002);

  EXPECT_EQ(Value(m, R"(celery_task_sent_total{name="tasks.add",hostname="gen1@web",queue_name="default"})"), "1");
  const std::string w1 = R"(name="tasks.add",hostname="celery@w1",queue_name="default")";
  EXPECT_EQ(Value(m, "celery_task_received_total{" + w1 + "}"), "1");
  EXPECT_EQ(Value(m, "celery_task_started_total{" + w1 + "}"), "1");
  EXPECT_EQ(Value(m, "celery_task_succeeded_total{" + w1 + "}"), "1");
  // celery-exporter shows the whole set at 0 for a label set that had any worker event.
  EXPECT_EQ(Value(m, "celery_task_sent_total{" + w1 + "}"), "0");
  EXPECT_EQ(Value(m, "celery_task_revoked_total{" + w1 + "}"), "0");
  EXPECT_EQ(Value(m, "celery_task_failed_total{" + w1 + R"(,exception=""})"), "0");
  EXPECT_EQ(Value(m, "celery_task_runtime_bucket{" + w1 + R"(,le="0.5"})"), "0");
  EXPECT_EQ(Value(m, "celery_task_runtime_bucket{" + w1 + R"(,le="0.75"})"), "1");
  EXPECT_EQ(Value(m, "celery_task_runtime_count{" + w1 + "}"), "1");
  EXPECT_EQ(Value(m, "celery_task_runtime_sum{" + w1 + "}"), "0.7");

  const std::string unknown = R"(name="tasks.add",hostname="celery@w1",queue_name="celery")";
  EXPECT_EQ(Value(m, "celery_task_failed_total{" + unknown + R"(,exception="ValueError"})"), "1");
  EXPECT_EQ(Value(m, "celery_task_failed_total{" + unknown + R"(,exception=""})"), "0");
  EXPECT_EQ(Value(m, "celery_task_received_total{" + unknown + "}"), "1");
  EXPECT_FALSE(Value(m, "celery_task_runtime_count{" + unknown + "}"));
}

TEST_F(MetricsTest, UnparsableExceptionIsUnknownException) {
  Received("d0000000-0000-0000-0000-000000000001", "tasks.x", "celery@w1", 1000);
  Failed("d0000000-0000-0000-0000-000000000001", "celery@w1", 1001, "something odd");
  const std::string m = Render(1001);
  EXPECT_EQ(Value(m, R"(celery_task_failed_total{name="tasks.x",hostname="celery@w1",queue_name="celery",)"
                     R"(exception="UnknownException"})"),
            "1");
}

TEST_F(MetricsTest, QueueGaugesComeFromTheQueuesArgument) {
  const std::string m = Render(1000, false, {{"celery", 12, 3}, {"low", 0}, {"celery", 99, 1}});
  EXPECT_EQ(Value(m, R"(celery_queue_length{queue_name="celery"})"), "12");
  EXPECT_EQ(Value(m, R"(celery_queue_length{queue_name="low"})"), "0");
  EXPECT_EQ(Value(m, R"(celery_active_consumer_count{queue_name="celery"})"), "3");
  EXPECT_FALSE(Value(m, R"(celery_active_consumer_count{queue_name="low"})"));  // unknown (Redis)
  EXPECT_FALSE(Value(m, R"(celery_active_worker_count{queue_name="celery"})"));
  EXPECT_NE(m.find("# TYPE celery_active_process_count gauge\n"), std::string::npos);
}

// ------------------------------------------------------------------ Stalk's own

TEST_F(MetricsTest, StalkQueueWaitAndEndToEndHistograms) {
  const char* id = "e0000000-0000-0000-0000-000000000001";
  Sent(id, "tasks.add", "gen1@web", "default", 1000);
  Received(id, "tasks.add", "celery@w1", 1000.5);
  Started(id, "celery@w1", 1002.5);  // waited 2s at the worker
  Succeeded(id, "celery@w1", 1004, 1.5);
  Succeeded(id, "celery@w1", 1004, 1.5);  // a duplicate event is not a second completion
  const std::string m = Render(1005);
  EXPECT_EQ(Value(m, R"(stalk_task_queue_wait_seconds_bucket{task="tasks.add",le="1.0"})"), "0");
  EXPECT_EQ(Value(m, R"(stalk_task_queue_wait_seconds_bucket{task="tasks.add",le="2.5"})"), "1");
  EXPECT_EQ(Value(m, R"(stalk_task_queue_wait_seconds_sum{task="tasks.add"})"), "2");
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_bucket{task="tasks.add",le="2.5"})"), "0");
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_bucket{task="tasks.add",le="5.0"})"), "1");
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_count{task="tasks.add"})"), "1");
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_sum{task="tasks.add"})"), "4");
}

TEST_F(MetricsTest, EndToEndObservedWhenTaskSentArrivesLast) {
  const char* id = "e0000000-0000-0000-0000-000000000002";
  Received(id, "tasks.add", "celery@w1", 1001);
  Started(id, "celery@w1", 1001);
  Succeeded(id, "celery@w1", 1003, 2);
  Sent(id, "tasks.add", "gen1@web", "default", 1000);
  const std::string m = Render(1005);
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_count{task="tasks.add"})"), "1");
  EXPECT_EQ(Value(m, R"(stalk_task_e2e_latency_seconds_sum{task="tasks.add"})"), "3");
}

TEST_F(MetricsTest, StalkIngestAndStateFamilies) {
  ingest_.events_ingested = 42;
  ingest_.rejected[static_cast<size_t>(RejectReason::kUnsupportedSerializer)] = 3;
  ingest_.broker_connected = true;
  ingest_.reconnects = 2;
  ingest_.queue_bytes = 512;
  ingest_.queue_dropped = 7;
  ingest_.ingest_lag_seconds = 0.25;
  Received("f0000000-0000-0000-0000-000000000001", "tasks.add", "celery@w1", 1000);
  const std::string m = Render(1000);
  EXPECT_EQ(Value(m, "stalk_events_ingested_total"), "42");
  EXPECT_EQ(Value(m, R"(stalk_events_rejected_total{reason="unsupported_serializer"})"), "3");
  EXPECT_EQ(Value(m, R"(stalk_events_rejected_total{reason="malformed_body"})"), "0");
  EXPECT_EQ(Value(m, "stalk_broker_connected"), "1");
  EXPECT_EQ(Value(m, "stalk_broker_reconnects_total"), "2");
  EXPECT_EQ(Value(m, "stalk_ingest_queue_bytes"), "512");
  EXPECT_EQ(Value(m, "stalk_ingest_dropped_total"), "7");
  EXPECT_EQ(Value(m, "stalk_ingest_lag_seconds"), "0.25");
  EXPECT_EQ(Value(m, "stalk_tasks_tracked"), "1");
  EXPECT_EQ(Value(m, "stalk_workers_tracked"), "1");
  EXPECT_EQ(Value(m, "stalk_tasks_evicted_total"), "0");
  EXPECT_EQ(Value(m, R"(stalk_build_info{version="0.1.0"})"), "1");
  EXPECT_GT(Num(m, "stalk_process_resident_memory_bytes"), 1e5);
  EXPECT_EQ(Value(m, R"(stalk_metrics_label_overflow_total{label="task"})"), "0");
}

// ------------------------------------------------------------------ labels

TEST_F(MetricsTest, LabelValuesAreEscaped) {
  Apply(WorkerEvent("worker-online", "celery@w\"1", 1000));
  Received("10000000-0000-0000-0000-000000000001", "a\"b\\c\nd", "celery@w\"1", 1000);
  const std::string m = Render(1000);
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w\"1",task="a\"b\\c\nd"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w\"1"})"), "1");
}

TEST(LabelSpace, EscapesAndReplacesInvalidUtf8) {
  std::string out;
  AppendEscapedLabelValue(out, "ok \xC3\xA9 \xFF end\\\"\n");
  EXPECT_EQ(out, "ok \xC3\xA9 \xEF\xBF\xBD end\\\\\\\"\\n");
}

class CappedMetricsTest : public MetricsTest {
 protected:
  static MetricsOptions Capped() {
    MetricsOptions o;
    o.max_task_names = 2;
    o.max_workers = 1;
    return o;
  }
  CappedMetricsTest() : MetricsTest(Capped()) {}
};

TEST_F(CappedMetricsTest, OverflowFoldsIntoOtherAndIsCounted) {
  // Clients come first and are many: they must not take the workers' slot.
  Sent("20000000-0000-0000-0000-0000000000a1", "t.one", "gen1@web", "celery", 999);
  Sent("20000000-0000-0000-0000-0000000000a2", "t.one", "gen2@web", "celery", 999);
  Apply(WorkerEvent("worker-online", "celery@w1", 1000));
  Apply(WorkerEvent("worker-online", "celery@w2", 1000));
  Apply(WorkerEvent("worker-online", "celery@w3", 1000));
  Received("20000000-0000-0000-0000-000000000001", "t.one", "celery@w1", 1000.1);
  Received("20000000-0000-0000-0000-000000000002", "t.two", "celery@w1", 1000.2);
  Received("20000000-0000-0000-0000-000000000003", "t.three", "celery@w1", 1000.3);
  Received("20000000-0000-0000-0000-000000000004", "t.four", "celery@w1", 1000.4);
  Received("20000000-0000-0000-0000-000000000005", "t.one", "celery@w2", 1000.5);
  const std::string m = Render(1001);
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="celery@w1",task="t.one",type="task-received"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="celery@w1",task="other",type="task-received"})"), "2");
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="other",task="t.one",type="task-received"})"), "1");
  EXPECT_FALSE(Value(m, R"(flower_events_total{worker="celery@w1",task="t.three",type="task-received"})"));
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="other"})"), "2");
  EXPECT_EQ(Value(m, R"(flower_worker_prefetched_tasks{worker="other",task="t.one"})"), "1");
  // Worker gauges of folded workers are summed into one "other" line.
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="other"})"), "2");
  EXPECT_FALSE(Value(m, R"(flower_worker_online{worker="celery@w2"})"));
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="gen1@web",task="t.one",type="task-sent"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="other",task="t.one",type="task-sent"})"), "1");
  EXPECT_EQ(Value(m, R"(stalk_metrics_label_overflow_total{label="task"})"), "2");
  EXPECT_EQ(Value(m, R"(stalk_metrics_label_overflow_total{label="worker"})"), "3");  // w2, w3 online; w2 received
  EXPECT_EQ(Value(m, R"(stalk_metrics_label_overflow_total{label="client"})"), "1");
  EXPECT_EQ(FirstDuplicateSeries(m), "");
}

class TtlMetricsTest : public MetricsTest {
 protected:
  static MetricsOptions WithTtl() {
    MetricsOptions o;
    o.task_name_ttl_seconds = 60;
    return o;
  }
  TtlMetricsTest() : MetricsTest(WithTtl()) {}
};

TEST_F(TtlMetricsTest, StaleTaskNamesLeaveGaugesButCountersStay) {
  Apply(WorkerEvent("worker-online", "celery@w1", 1000, 30));
  Received("30000000-0000-0000-0000-000000000001", "t.old", "celery@w1", 1000);
  Started("30000000-0000-0000-0000-000000000001", "celery@w1", 1000.5);
  Succeeded("30000000-0000-0000-0000-000000000001", "celery@w1", 1001, 0.5);
  Apply(WorkerEvent("worker-heartbeat", "celery@w1", 1100, 30));
  const std::string m = Render(1100);
  EXPECT_EQ(Value(m, R"(flower_worker_online{worker="celery@w1"})"), "1");
  EXPECT_FALSE(Value(m, R"(flower_worker_prefetched_tasks{worker="celery@w1",task="t.old"})"));
  EXPECT_FALSE(Value(m, R"(flower_task_prefetch_time_seconds{worker="celery@w1",task="t.old"})"));
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="celery@w1",task="t.old",type="task-succeeded"})"), "1");
  EXPECT_EQ(Value(m, R"(flower_task_runtime_seconds_count{worker="celery@w1",task="t.old"})"), "1");
}

class FlowerOnlyMetricsTest : public MetricsTest {
 protected:
  static MetricsOptions FlowerOnly() {
    MetricsOptions o;
    o.celery_exporter_compat = false;
    o.runtime_buckets = {5, 1, 1, INFINITY};
    return o;
  }
  FlowerOnlyMetricsTest() : MetricsTest(FlowerOnly()) {}
};

TEST_F(FlowerOnlyMetricsTest, SetsCanBeSwitchedOffAndBucketsConfigured) {
  Received("40000000-0000-0000-0000-000000000001", "t.a", "celery@w1", 1000);
  Succeeded("40000000-0000-0000-0000-000000000001", "celery@w1", 1001, 3);
  const std::string m = Render(1001);
  EXPECT_EQ(m.find("celery_"), std::string::npos);
  const std::string pair = R"(worker="celery@w1",task="t.a")";
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="1.0"})"), "0");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="5.0"})"), "1");
  EXPECT_EQ(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="+Inf"})"), "1");
  EXPECT_FALSE(Value(m, "flower_task_runtime_seconds_bucket{" + pair + R"(,le="0.5"})"));
}

// ------------------------------------------------------------------ formats

TEST_F(MetricsTest, OpenMetricsNamesAndEof) {
  Received("50000000-0000-0000-0000-000000000001", "t.a", "celery@w1", 1000);
  const std::string m = Render(1000, /*openmetrics=*/true);
  ASSERT_GE(m.size(), 6u);
  EXPECT_EQ(m.substr(m.size() - 6), "# EOF\n");
  EXPECT_EQ(m.find("# EOF"), m.size() - 6);  // exactly once, at the end
  EXPECT_NE(m.find("# TYPE flower_events counter\n"), std::string::npos);
  EXPECT_EQ(m.find("# TYPE flower_events_total"), std::string::npos);
  EXPECT_EQ(Value(m, R"(flower_events_total{worker="celery@w1",task="t.a",type="task-received"})"), "1");
  EXPECT_NE(m.find("# TYPE stalk_build info\n"), std::string::npos);
  EXPECT_EQ(Value(m, R"(stalk_build_info{version="0.1.0"})"), "1");
  EXPECT_NE(m.find("# TYPE celery_task_sent counter\n"), std::string::npos);

  const std::string text = Render(1000, /*openmetrics=*/false);
  EXPECT_EQ(text.find("# EOF"), std::string::npos);
  EXPECT_NE(text.find("# TYPE stalk_build_info gauge\n"), std::string::npos);
}

TEST(ExpositionWriter, SampleWithoutLabelsHasNoBraces) {
  ExpositionWriter w(false);
  w.Family("x_seconds", MetricType::kGauge, "help with \\ and\nnewline");
  w.Open();
  w.Close(1.5);
  w.Open();
  w.Labels("");
  w.Label("a", "b");
  w.Close(uint64_t{2});
  EXPECT_EQ(w.Finish(),
            "# HELP x_seconds help with \\\\ and\\nnewline\n# TYPE x_seconds gauge\nx_seconds 1.5\n"
            "x_seconds{a=\"b\"} 2\n");
}

TEST(Histogram, BoundsAndLeSpelling) {
  EXPECT_EQ(FormatBound(1.0), "1.0");
  EXPECT_EQ(FormatBound(0.005), "0.005");
  EXPECT_EQ(FormatBound(10), "10.0");
  EXPECT_EQ(NormalizeBounds({}).size(), 14u);
  Histogram h;
  const std::vector<double> bounds = {1, 2};
  h.Observe(bounds, 1);  // le="1" includes 1
  h.Observe(bounds, 1.5);
  h.Observe(bounds, 99);
  h.Observe(bounds, std::nan(""));
  EXPECT_EQ(h.counts, (std::vector<uint64_t>{1, 1, 1}));
  EXPECT_EQ(h.count, 3u);
  EXPECT_EQ(h.sum, 101.5);
}

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

// Runs `promtool check metrics < file` on `body`.
PromtoolResult Promtool(const std::string& body) {
  char path[] = "/tmp/stalk_metrics_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0 || write(fd, body.data(), body.size()) != static_cast<ssize_t>(body.size())) {
    return {};
  }
  close(fd);
  const std::string cmd = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
  PromtoolResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    unlink(path);
    return r;
  }
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) {
    r.output.append(buf, n);
  }
  const int status = pclose(p);
  unlink(path);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class PromtoolTest : public MetricsTest {
 protected:
  void SetUp() override {
    if (access("/usr/bin/promtool", X_OK) != 0) {
      GTEST_SKIP() << "/usr/bin/promtool not installed";
    }
  }
  // Every kind of family: escaping, custom event types, both sets, histograms, a dead worker.
  void Fill() {
    Apply(WorkerEvent("worker-online", "celery@w1", 1000));
    Apply(WorkerEvent("worker-online", "celery@dead", 1000));
    const char* id = "60000000-0000-0000-0000-000000000001";
    Sent(id, "tasks.add", "gen1@web", "default", 1000);
    Received(id, "tasks.add", "celery@w1", 1000.1);
    Started(id, "celery@w1", 1000.2);
    Succeeded(id, "celery@w1", 1000.9, 0.7);
    Received("60000000-0000-0000-0000-000000000002", "weird \"name\"\\\n\xff", "celery@w1", 1001);
    Failed("60000000-0000-0000-0000-000000000002", "celery@w1", 1001.5, "KeyError('k')");
    Received("60000000-0000-0000-0000-000000000003", "tasks.add", "celery@dead", 1001);
    Apply(TaskEvent("task-progress", "60000000-0000-0000-0000-000000000003", "celery@dead", 1001.2));
    // A worker sending a subtask: its hostname is both a client and a worker.
    Sent("60000000-0000-0000-0000-000000000004", "tasks.add", "celery@w1", "default", 1002);
    Sent("60000000-0000-0000-0000-000000000005", "tasks.sub", "celery@w1", "celery", 1002);
    Received("60000000-0000-0000-0000-000000000005", "tasks.sub", "celery@w1", 1003);
    Apply(WorkerEvent("worker-heartbeat", "celery@w1", 1010));
    state_.Write()->Tick(1010);
    ingest_.events_ingested = 10;
  }
};

// Queue lengths as the Redis transport reports them (no consumer counts): promtool finds nothing.
TEST_F(PromtoolTest, AcceptsTheExposition) {
  Fill();
  const std::string m = Render(1010, false, {{"celery", 5}, {"default", 0}});
  const PromtoolResult r = Promtool(m);
  EXPECT_EQ(r.exit_code, 0) << r.output << "\n--- exposition ---\n" << m;
  EXPECT_EQ(FirstDuplicateSeries(m), "");
  EXPECT_EQ(Value(m, R"(celery_task_sent_total{name="tasks.sub",hostname="celery@w1",queue_name="celery"})"), "1");
  EXPECT_EQ(Value(m, R"(celery_task_sent_total{name="tasks.add",hostname="celery@w1",queue_name="default"})"), "1");
}

// celery-exporter's celery_active_{consumer,worker,process}_count gauges break promtool's lint rule
// against a "_count" suffix on gauges (exit code 3: lint only; a parse error exits 1). Stalk keeps
// the names so celery-exporter dashboards keep working; they are the only findings.
TEST_F(PromtoolTest, OnlyCeleryExporterCountNamesAreLinted) {
  Fill();
  const std::string m = Render(1010, false, {{"celery", 5, 2, 1, 4}, {"default", 0}});
  const PromtoolResult r = Promtool(m);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  std::string expected;
  for (const char* name :
       {"celery_active_consumer_count", "celery_active_process_count", "celery_active_worker_count"}) {
    expected += std::string(name) + " non-histogram and non-summary metrics should not have \"_count\" suffix\n";
  }
  EXPECT_EQ(r.output, expected);
}

// OpenMetrics has no promtool check; prometheus_client's OpenMetrics parser is strict (types, suffixes,
// bucket order, # EOF). Skipped when python3-prometheus-client is not installed.
TEST_F(PromtoolTest, OpenMetricsParsesWithPrometheusClient) {
  if (std::system("/usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' 2>/dev/null") != 0) {
    GTEST_SKIP() << "python3-prometheus-client not installed";
  }
  Fill();
  const std::string m = Render(1010, true, {{"celery", 5, 2, 1, 4}, {"default", 0}});
  char path[] = "/tmp/stalk_openmetrics_XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, m.data(), m.size()), static_cast<ssize_t>(m.size()));
  close(fd);
  const std::string cmd = std::string(
                              "/usr/bin/python3 -c 'import sys; from prometheus_client.openmetrics.parser import "
                              "text_string_to_metric_families as p; "
                              "n = sum(len(f.samples) for f in p(open(sys.argv[1]).read())); "
                              "sys.exit(0 if n > 100 else 2)' ") +
                          path;
  const int status = std::system(cmd.c_str());
  unlink(path);
  EXPECT_EQ(status, 0) << m;
  EXPECT_EQ(FirstDuplicateSeries(m), "");
}

}  // namespace
}  // namespace stalk
