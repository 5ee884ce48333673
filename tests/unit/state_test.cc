// Stalk — Celery monitoring server.
// Unit tests of state/: ClusterState merge rules (celery-protocol.md §2.5 and Stalk's §8 corrections,
// see cluster_state.h), worker liveness (§2.4), eviction, bookkeeping, RunTaskQuery (Flower's
// flower/utils/tasks.py + search.py semantics) and WriteTaskJson (Flower's Task.as_dict field names).
// Where Stalk deliberately differs from celery.events.state, the test says so in a comment.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_writer.h"
#include "protocol/event.h"
#include "protocol/event_decoder.h"
#include "state/cluster_state.h"
#include "state/state_listener.h"
#include "state/task.h"
#include "state/task_json.h"
#include "state/task_query.h"

namespace stalk {

static void PrintTo(TaskState s, std::ostream* os) { *os << TaskStateName(s); }

namespace {

using json = nlohmann::json;

// ------------------------------------------------------------------ helpers

constexpr std::string_view kW1 = "w1@lab";
constexpr std::string_view kW2 = "w2@lab";
constexpr std::string_view kClient = "gen8470@vm";
constexpr std::string_view kU1 = "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a";
constexpr std::string_view kU2 = "53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11";
constexpr std::string_view kU3 = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
constexpr std::string_view kU4 = "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e";
constexpr std::string_view kU5 = "c0ffee00-1234-4567-89ab-cdef01234567";
constexpr std::string_view kU6 = "deadbeef-0000-4000-8000-000000000006";

OptStr S(std::string_view v) {
  OptStr o;
  o.value = v;
  o.present = true;
  return o;
}

OptStr Null() {
  OptStr o;
  o.present = true;
  o.null = true;
  return o;
}

// A task event as the decoder delivers it. String views must outlive Apply(): tests pass literals.
Event TaskEv(std::string_view type, std::string_view uuid, double ts, std::string_view host = kW1) {
  Event e;
  e.type = type;
  e.kind = ClassifyEventType(type);
  e.uuid = uuid;
  e.hostname = host;
  e.timestamp = ts;
  e.has_timestamp = true;
  return e;
}

Event WorkerEv(std::string_view type, std::string_view host, double ts, std::optional<double> freq = 2.0) {
  Event e;
  e.type = type;
  e.kind = ClassifyEventType(type);
  e.hostname = host;
  e.timestamp = ts;
  e.has_timestamp = true;
  e.freq = freq;
  return e;
}

// Applies a task event with local receive time == its timestamp.
void Feed(ClusterState& st, const Event& e) { st.Apply(e, e.timestamp); }

void Received(ClusterState& st, std::string_view id, double ts, std::string_view host = kW1,
              std::string_view name = "tasks.add", int64_t retries = 0) {
  Event e = TaskEv("task-received", id, ts, host);
  e.name = S(name);
  e.args = S("(2, 3)");
  e.kwargs = S("{}");
  e.retries = retries;
  e.root_id = S(id);
  e.parent_id = Null();
  e.eta = Null();
  e.expires = Null();
  Feed(st, e);
}

void Simple(ClusterState& st, std::string_view type, std::string_view id, double ts, std::string_view host = kW1) {
  Feed(st, TaskEv(type, id, ts, host));
}

std::string StateOf(const ClusterState& st, std::string_view id) {
  const Task* t = st.FindTask(id);
  return t ? std::string(st.StateName(*t)) : "<missing>";
}

json TaskJson(const ClusterState& st, std::string_view id) {
  const Task* t = st.FindTask(id);
  EXPECT_NE(t, nullptr) << id;
  if (!t) {
    return json();
  }
  JsonWriter w;
  WriteTaskJson(st, *t, w);
  return json::parse(w.str());  // throws (fails the test) on invalid JSON
}

bool Unfinished(const ClusterState& st, std::string_view host, std::string_view id) {
  const Worker* w = st.FindWorker(host);
  const Task* t = st.FindTask(id);
  return w && t && w->unfinished.contains(t->seq);
}

std::vector<std::string> Ids(const Result<std::vector<const Task*>>& r) {
  std::vector<std::string> out;
  if (!r.ok()) {
    ADD_FAILURE() << "query failed: " << r.error();
    return out;
  }
  for (const Task* t : *r) {
    out.push_back(t->IdString());
  }
  return out;
}

// ------------------------------------------------------------------ (a) §2.5 worked table

// The table in celery-protocol.md §2.5 was recorded from Celery 5.2.6's State. Stalk follows it for
// state, except where cluster_state.h documents a correction; each such row says what Celery does.
TEST(StateMerge, WorkedTableWithStalkCorrections) {
  ClusterState st;

  Event succeeded = TaskEv("task-succeeded", kU1, 3);
  succeeded.result = S("5");
  succeeded.runtime = 0.5;
  succeeded.clock = 30;
  succeeded.has_clock = true;
  Feed(st, succeeded);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->timestamp, 3);

  // received (t=1): both Celery and Stalk keep SUCCESS / timestamp 3 and merge only name/args/etc.
  Event received = TaskEv("task-received", kU1, 1);
  received.name = S("tasks.add");
  received.args = S("(2, 3)");
  received.kwargs = S("{}");
  received.retries = 0;
  received.root_id = S(kU1);
  received.clock = 10;
  received.has_clock = true;
  Feed(st, received);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->timestamp, 3);
  EXPECT_EQ(t->received, 1);
  EXPECT_EQ(st.Name(t->name), "tasks.add");
  EXPECT_EQ(t->args.view(), "(2, 3)");
  EXPECT_EQ(t->retries, 0);
  EXPECT_EQ(t->clock, 30) << "a late event must not move the clock back";
  EXPECT_EQ(t->result.view(), "5");

  // started (t=2): Celery keeps SUCCESS but copies all fields, so its timestamp becomes 2.
  // Stalk: SUCCESS and timestamp stays 3 (late events fill, they do not overwrite).
  Simple(st, "task-started", kU1, 2);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->timestamp, 3) << "Celery would show 2 here; Stalk must not overwrite";
  EXPECT_EQ(t->started, 2);

  // failed (t=4): FAILURE ranks below SUCCESS in both. Celery: timestamp 4. Stalk: still 3, and
  // only fields still unknown are filled (exception was unknown, result is kept).
  Event failed = TaskEv("task-failed", kU1, 4);
  failed.exception = S("ValueError('late')");
  failed.traceback = S("Traceback ...");
  Feed(st, failed);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->timestamp, 3) << "Celery would show 4 here";
  EXPECT_EQ(t->failed, 4);
  EXPECT_EQ(t->result.view(), "5");
  EXPECT_EQ(t->exception.view(), "ValueError('late')");

  // retried (t=5): Celery exempts RETRY from precedence and shows RETRY (a finished task regresses).
  // Stalk: SUCCESS is final (IsFinal), so a task-retried never regresses it.
  Simple(st, "task-retried", kU1, 5);
  EXPECT_EQ(t->state, TaskState::kSuccess) << "Celery would show RETRY";
  EXPECT_EQ(t->timestamp, 3) << "Celery would show 5";
  EXPECT_EQ(t->retried, 5);

  // custom task-foo (t=6): Celery shows FOO because it leaves RETRY. In Stalk the task never left
  // SUCCESS, and a custom state ranks below SUCCESS, so it stays SUCCESS.
  Simple(st, "task-foo", kU1, 6);
  EXPECT_EQ(t->state, TaskState::kSuccess) << "Celery would show FOO (its task was in RETRY)";
  EXPECT_EQ(st.StateName(*t), "SUCCESS");
  EXPECT_EQ(t->timestamp, 3);
  EXPECT_DOUBLE_EQ(t->runtime, 0.5);
}

// ------------------------------------------------------------------ (b) normal lifecycle

TEST(StateMerge, NormalLifecycleSentReceivedStartedSucceeded) {
  ClusterState st;
  Event sent = TaskEv("task-sent", kU1, 10, kClient);
  sent.name = S("tasks.add");
  sent.args = S("(2, 3)");
  sent.kwargs = S("{}");
  sent.retries = 0;
  sent.eta = Null();
  sent.expires = Null();
  sent.queue = S("celery");
  sent.exchange = S("");
  sent.routing_key = S("celery");
  sent.root_id = S(kU1);
  sent.parent_id = Null();
  sent.clock = 1;
  sent.has_clock = true;
  Feed(st, sent);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kPending);
  EXPECT_EQ(st.Name(t->client), kClient);
  EXPECT_EQ(t->worker, kNoId) << "task-sent names the client, not a worker";
  EXPECT_EQ(st.FindWorker(kClient), nullptr) << "a client is not a worker";
  EXPECT_EQ(t->sent, 10);

  Received(st, kU1, 11);
  EXPECT_EQ(t->state, TaskState::kReceived);
  EXPECT_EQ(st.Name(t->worker), kW1);

  Event started = TaskEv("task-started", kU1, 12);
  started.clock = 5;
  started.has_clock = true;
  Feed(st, started);
  EXPECT_EQ(t->state, TaskState::kStarted);

  Event succeeded = TaskEv("task-succeeded", kU1, 13.5);
  succeeded.result = S("5");
  succeeded.runtime = 1.25;
  succeeded.clock = 6;
  succeeded.has_clock = true;
  Feed(st, succeeded);

  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(st.StateName(*t), "SUCCESS");
  EXPECT_EQ(t->sent, 10);
  EXPECT_EQ(t->received, 11);
  EXPECT_EQ(t->started, 12);
  EXPECT_EQ(t->succeeded, 13.5);
  EXPECT_EQ(t->timestamp, 13.5);
  EXPECT_DOUBLE_EQ(t->runtime, 1.25);
  EXPECT_EQ(t->result.view(), "5");
  EXPECT_TRUE(t->exception.is_null());
  EXPECT_EQ(t->clock, 6);
  EXPECT_EQ(st.Name(t->name), "tasks.add");
  EXPECT_EQ(t->args.view(), "(2, 3)");
  EXPECT_EQ(t->kwargs.view(), "{}");
  EXPECT_EQ(t->retries, 0);
  EXPECT_EQ(st.Name(t->worker), kW1);
  EXPECT_EQ(st.Name(t->client), kClient);
  EXPECT_EQ(st.Name(t->queue), "celery");
  EXPECT_EQ(st.Name(t->exchange), "");
  EXPECT_EQ(st.Name(t->routing_key), "celery");
  EXPECT_TRUE(t->eta.is_null());
  EXPECT_FALSE(t->lost);
  EXPECT_EQ(st.counters().task_events, 4u);
  EXPECT_EQ(st.counters().tasks_created, 1u);
  EXPECT_EQ(st.task_count(), 1u);
  EXPECT_EQ(st.TaskTypes(), std::vector<std::string_view>{"tasks.add"});
  EXPECT_EQ(st.QueueNames(), std::vector<std::string>{"celery"});
  const Worker* w = st.FindWorker(kW1);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->events, 3u);
  EXPECT_TRUE(w->unfinished.empty());
}

// ------------------------------------------------------------------ (c) retries

TEST(StateMerge, RetryInOrderEndsSuccessWithRetriesOne) {
  ClusterState st;
  Received(st, kU1, 1, kW1, "tasks.flaky", 0);
  Simple(st, "task-started", kU1, 2);
  Event retried = TaskEv("task-retried", kU1, 3);
  retried.exception = S("Retry('in 1s')");
  retried.traceback = S("Traceback ...");
  Feed(st, retried);
  EXPECT_EQ(StateOf(st, kU1), "RETRY");
  Received(st, kU1, 4, kW1, "tasks.flaky", 1);
  EXPECT_EQ(StateOf(st, kU1), "RECEIVED") << "Celery: transitions out of RETRY are always taken";
  Simple(st, "task-started", kU1, 5);
  Event ok = TaskEv("task-succeeded", kU1, 6);
  ok.result = S("'done'");
  ok.runtime = 0.1;
  Feed(st, ok);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->retries, 1);
  EXPECT_EQ(t->retried, 3);
  EXPECT_EQ(t->received, 4);
  EXPECT_EQ(t->started, 5);
  EXPECT_EQ(st.counters().tasks_created, 1u);
}

// §2.3 [V]: task-retried "may arrive after the new task-received with retries+1". Celery then shows
// RETRY (RETRY is exempt from precedence). Stalk's header promises a stale task-retried never
// regresses a task, and the second attempt's retries count must be kept.
TEST(StateMerge, LateRetriedAfterSecondReceivedDoesNotRegress) {
  ClusterState st;
  Received(st, kU1, 1, kW1, "tasks.flaky", 0);
  Simple(st, "task-started", kU1, 2);
  Received(st, kU1, 4, kW1, "tasks.flaky", 1);  // the retry's new delivery arrives first
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->retries, 1) << "task-received(retries=1) is a newer attempt; its retries count must win";
  Simple(st, "task-retried", kU1, 3);  // older than the second task-received (t=4)
  EXPECT_NE(t->state, TaskState::kRetry) << "late task-retried (t=3) moved the task back to RETRY although "
                                            "task-received (t=4) of the next attempt was already applied";
  Simple(st, "task-started", kU1, 5);
  Event ok = TaskEv("task-succeeded", kU1, 6);
  ok.result = S("'done'");
  Feed(st, ok);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(t->retries, 1);
}

// ------------------------------------------------------------------ (d) rejected

// §8: Reject(requeue=False) under acks_late sends received, started, rejected. Celery keeps STARTED
// (REJECTED ranks below STARTED); Stalk must show REJECTED.
TEST(StateMerge, RejectedAfterStartedIsRejected) {
  ClusterState st;
  Received(st, kU1, 1);
  Simple(st, "task-started", kU1, 2);
  EXPECT_TRUE(Unfinished(st, kW1, kU1));
  Event rej = TaskEv("task-rejected", kU1, 3);
  rej.requeue = false;
  Feed(st, rej);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kRejected) << "Celery would keep STARTED";
  EXPECT_EQ(t->rejected, 3);
  EXPECT_EQ(t->timestamp, 3);
  EXPECT_FALSE(t->requeue);
  EXPECT_FALSE(Unfinished(st, kW1, kU1));
  EXPECT_TRUE(IsFinal(t->state));
}

TEST(StateMerge, RejectedWithRequeueThenReceivedAgain) {
  ClusterState st;
  Received(st, kU1, 1);
  Simple(st, "task-started", kU1, 2);
  Event rej = TaskEv("task-rejected", kU1, 3);
  rej.requeue = true;
  Feed(st, rej);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kRejected);
  EXPECT_TRUE(t->requeue);
  EXPECT_FALSE(Unfinished(st, kW1, kU1)) << "back in the broker queue, not on the worker";

  // The message goes back to the queue and another worker takes it.
  Received(st, kU1, 4, kW2);
  EXPECT_EQ(t->state, TaskState::kReceived);
  EXPECT_EQ(st.Name(t->worker), kW2);
  EXPECT_TRUE(Unfinished(st, kW2, kU1));
  EXPECT_FALSE(Unfinished(st, kW1, kU1));
  Simple(st, "task-started", kU1, 5, kW2);
  Simple(st, "task-succeeded", kU1, 6, kW2);
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_FALSE(Unfinished(st, kW2, kU1));
}

// Not in the brief's list; from the header's promise ("late events fill missing fields instead of
// overwriting newer ones", IsFinal: "REJECTED without requeue ... final"). A reordered task-started
// that is older than the final task-rejected must not revive the task.
TEST(StateMerge, LateStartedDoesNotReviveRejectedWithoutRequeue) {
  ClusterState st;
  Received(st, kU1, 1);
  Event rej = TaskEv("task-rejected", kU1, 3);
  rej.requeue = false;
  Feed(st, rej);
  Simple(st, "task-started", kU1, 2);  // older than the rejection, delivered late
  EXPECT_EQ(StateOf(st, kU1), "REJECTED");
  EXPECT_FALSE(Unfinished(st, kW1, kU1)) << "a dropped task must not count as executing on the worker";
}

// ------------------------------------------------------------------ (e) revoked

TEST(StateMerge, RevokedBeforeStart) {
  ClusterState st;
  Event sent = TaskEv("task-sent", kU1, 1, kClient);
  sent.name = S("tasks.add");
  Feed(st, sent);
  Received(st, kU1, 2);
  EXPECT_TRUE(Unfinished(st, kW1, kU1)) << "prefetched";
  Event rev = TaskEv("task-revoked", kU1, 3);
  rev.terminated = false;
  rev.signum = Null();
  rev.expired = false;
  Feed(st, rev);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kRevoked);
  EXPECT_EQ(t->revoked, 3);
  EXPECT_EQ(t->started, 0);
  EXPECT_FALSE(Unfinished(st, kW1, kU1)) << "Flower #1364: revoked-before-start must leave the prefetched gauge";
  EXPECT_TRUE(st.FindWorker(kW1)->unfinished.empty());

  // A late task-started (REVOKED outranks STARTED in both Celery and Stalk) keeps REVOKED.
  Simple(st, "task-started", kU1, 2.5);
  EXPECT_EQ(t->state, TaskState::kRevoked);
  EXPECT_EQ(t->started, 2.5);
  EXPECT_FALSE(Unfinished(st, kW1, kU1));
}

TEST(StateMerge, RevokedOnlySeenOnce) {
  // An expired task may only ever produce task-revoked (no received before it).
  ClusterState st;
  Event rev = TaskEv("task-revoked", kU1, 3);
  rev.expired = true;
  Feed(st, rev);
  EXPECT_EQ(StateOf(st, kU1), "REVOKED");
  EXPECT_FALSE(Unfinished(st, kW1, kU1));
}

// ------------------------------------------------------------------ (f) worker liveness

class CountingListener : public StateListener {
 public:
  void OnTaskEvent(const ClusterState&, const Task&, const Event&, TaskState previous) override {
    previous_states.push_back(previous);
  }
  void OnWorkerEvent(const ClusterState&, const Worker&, const Event&) override { ++worker_events; }
  void OnWorkerOffline(const ClusterState&, const Worker& w, size_t lost) override {
    offline.emplace_back(w.hostname, lost);
  }
  void OnTaskEvicted(const ClusterState&, const Task& t) override { evicted.push_back(t.IdString()); }

  std::vector<TaskState> previous_states;
  int worker_events = 0;
  std::vector<std::pair<std::string, size_t>> offline;
  std::vector<std::string> evicted;
};

TEST(StateWorkers, HeartbeatExpiryMarksWorkerOfflineAndTasksLost) {
  ClusterState st;
  CountingListener listener;
  st.AddListener(&listener);
  Received(st, kU1, 99);
  Simple(st, "task-started", kU1, 99.5);  // executing
  Received(st, kU2, 99.6);                // prefetched
  Received(st, kU3, 99.7);
  Simple(st, "task-succeeded", kU3, 99.8);  // finished: never lost
  st.Apply(WorkerEv("worker-heartbeat", kW1, 100, 2.0), 100);

  const Worker* w = st.FindWorker(kW1);
  ASSERT_NE(w, nullptr);
  EXPECT_DOUBLE_EQ(w->freq, 2.0);
  EXPECT_TRUE(w->alive);
  EXPECT_EQ(w->last_heartbeat, 100);

  st.Tick(103);
  EXPECT_TRUE(w->alive);
  EXPECT_TRUE(st.IsAlive(*w, 103));
  EXPECT_FALSE(st.FindTask(kU1)->lost);

  st.Tick(104.1);  // 100 + 2 x 2.0 = 104 has passed
  EXPECT_FALSE(w->alive);
  EXPECT_FALSE(st.IsAlive(*w, 104.1));
  EXPECT_EQ(w->offline_since, 104.1);
  const Task* started = st.FindTask(kU1);
  EXPECT_TRUE(started->lost);
  EXPECT_EQ(started->lost_at, 104.1);
  EXPECT_EQ(started->state, TaskState::kStarted) << "keeps the last real state (§8)";
  EXPECT_TRUE(st.FindTask(kU2)->lost);
  EXPECT_FALSE(st.FindTask(kU3)->lost);
  EXPECT_EQ(st.counters().tasks_lost, 2u);
  EXPECT_EQ(w->lost_tasks, 2u);
  ASSERT_EQ(listener.offline.size(), 1u);
  EXPECT_EQ(listener.offline[0], std::make_pair(std::string(kW1), size_t{2}));

  st.Tick(105);  // no double counting
  EXPECT_EQ(st.counters().tasks_lost, 2u);
  EXPECT_EQ(listener.offline.size(), 1u);

  // JSON shows lost/lost_at.
  const json j = TaskJson(st, kU1);
  EXPECT_EQ(j["lost"], true);
  EXPECT_DOUBLE_EQ(j["lost_at"].get<double>(), 104.1);

  // The worker comes back: alive again; its old tasks stay lost until an event speaks about them.
  st.Apply(WorkerEv("worker-heartbeat", kW1, 110, 2.0), 110);
  EXPECT_TRUE(w->alive);
  EXPECT_EQ(w->offline_since, 0);
  st.Tick(111);
  EXPECT_TRUE(w->alive);
  EXPECT_TRUE(st.FindTask(kU1)->lost);
  Simple(st, "task-succeeded", kU1, 111.5);
  EXPECT_FALSE(st.FindTask(kU1)->lost);
  EXPECT_EQ(StateOf(st, kU1), "SUCCESS");
}

TEST(StateWorkers, WorkerOfflineEventIsImmediate) {
  ClusterState st;
  st.Apply(WorkerEv("worker-online", kW1, 100, 2.0), 100);
  Received(st, kU1, 100.5);
  Simple(st, "task-started", kU1, 100.6);
  const Worker* w = st.FindWorker(kW1);
  ASSERT_NE(w, nullptr);
  EXPECT_TRUE(w->alive);

  st.Apply(WorkerEv("worker-offline", kW1, 101, 2.0), 101);
  EXPECT_FALSE(w->alive);
  EXPECT_TRUE(w->offline_event);
  EXPECT_FALSE(st.IsAlive(*w, 101));
  EXPECT_EQ(w->offline_since, 101);
  EXPECT_TRUE(st.FindTask(kU1)->lost);
  EXPECT_EQ(st.FindTask(kU1)->lost_at, 101);

  st.Tick(101.5);
  EXPECT_FALSE(w->alive) << "an offline event is not undone by a recent last_heartbeat";

  // A new heartbeat after offline: alive again.
  st.Apply(WorkerEv("worker-heartbeat", kW1, 120, 2.0), 120);
  EXPECT_TRUE(w->alive);
  EXPECT_FALSE(w->offline_event);
  st.Tick(121);
  EXPECT_TRUE(w->alive);
  EXPECT_TRUE(st.IsAlive(*w, 121));
}

TEST(StateWorkers, WorkerFirstSeenViaTaskEventsGetsFreq60) {
  ClusterState st;
  Received(st, kU1, 200, kW2);
  const Worker* w = st.FindWorker(kW2);
  ASSERT_NE(w, nullptr);
  EXPECT_DOUBLE_EQ(w->freq, 60) << "Celery's Worker default (§2.5)";
  EXPECT_TRUE(st.IsAlive(*w, 200 + 119));
  EXPECT_FALSE(st.IsAlive(*w, 200 + 121));
  st.Tick(250);
  EXPECT_TRUE(w->alive);
  st.Tick(320.5);
  EXPECT_FALSE(w->alive);
  EXPECT_TRUE(st.FindTask(kU1)->lost);

  // A worker-* event brings the real freq.
  st.Apply(WorkerEv("worker-heartbeat", kW2, 400, 2.0), 400);
  EXPECT_DOUBLE_EQ(w->freq, 2.0);
  EXPECT_TRUE(w->alive);
  EXPECT_FALSE(st.IsAlive(*w, 404.5));
}

// Root cause found while writing (f): worker-offline marks tasks lost only when Worker::alive is
// already true, and alive is set only by worker-* events and Tick(). A worker known only through
// task events since the last Tick (Stalk just started, or the worker came back) keeps its tasks
// unflagged forever.
TEST(StateWorkers, OfflineEventBeforeAnyTickStillMarksTasksLost) {
  ClusterState st;
  Received(st, kU1, 300, kW2);
  Simple(st, "task-started", kU1, 300.2, kW2);
  st.Apply(WorkerEv("worker-offline", kW2, 301, 2.0), 301);  // no Tick() in between
  const Worker* w = st.FindWorker(kW2);
  ASSERT_NE(w, nullptr);
  EXPECT_FALSE(st.IsAlive(*w, 301));
  EXPECT_TRUE(st.FindTask(kU1)->lost) << "worker-offline arrived before the first Tick: task not flagged lost";
  EXPECT_EQ(st.counters().tasks_lost, 1u);
}

TEST(StateWorkers, HeartbeatFieldsAreKept) {
  ClusterState st;
  CountingListener listener;
  st.AddListener(&listener);
  Event hb = WorkerEv("worker-heartbeat", kW1, 1795655136.91077, 2.0);
  hb.active = 3;
  hb.processed = 42;
  hb.loadavg = std::array<double, 3>{0.53, 0.38, 0.18};
  hb.pid = 8288;
  hb.clock = 2;
  hb.has_clock = true;
  hb.sw_ident = S("py-celery");
  hb.sw_ver = S("5.2.6");
  hb.sw_sys = S("Linux");
  st.Apply(hb, 1795655137.0);
  const Worker* w = st.FindWorker(kW1);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->hostname, kW1);
  EXPECT_EQ(w->active, 3);
  EXPECT_EQ(w->processed, 42);
  EXPECT_TRUE(w->has_loadavg);
  EXPECT_DOUBLE_EQ(w->loadavg[2], 0.18);
  EXPECT_EQ(w->pid, 8288);
  EXPECT_EQ(w->clock, 2);
  EXPECT_EQ(w->sw_ident, "py-celery");
  EXPECT_EQ(w->sw_ver, "5.2.6");
  EXPECT_EQ(w->sw_sys, "Linux");
  EXPECT_EQ(w->last_heartbeat, 1795655137.0) << "liveness uses the receiver's clock";
  EXPECT_EQ(st.counters().worker_events, 1u);
  EXPECT_EQ(listener.worker_events, 1);

  // A requested heartbeat (freq 5, no counters) keeps the last counters.
  Event req = WorkerEv("worker-heartbeat", kW1, 1795655138.0, 5.0);
  st.Apply(req, 1795655138.0);
  EXPECT_DOUBLE_EQ(w->freq, 5.0);
  EXPECT_EQ(w->processed, 42);
  EXPECT_TRUE(st.IsAlive(*w, 1795655138.0 + 9.9));

  JsonWriter jw;
  WriteWorkerJson(st, *w, 1795655139.0, jw);
  const json j = json::parse(jw.str());
  EXPECT_EQ(j["hostname"], kW1);
  EXPECT_EQ(j["status"], true);
  EXPECT_EQ(j["processed"], 42);
  EXPECT_EQ(j["loadavg"].size(), 3u);
}

TEST(StateWorkers, NonTaskNonWorkerEventsAreCountedOnly) {
  ClusterState st;
  Event e;
  e.type = "myapp-deployed";
  e.kind = ClassifyEventType(e.type);
  st.Apply(e, 1);
  EXPECT_EQ(st.counters().other_events, 1u);
  EXPECT_EQ(st.task_count(), 0u);
  EXPECT_TRUE(st.workers().empty());
}

// ------------------------------------------------------------------ (g) eviction

TEST(StateEviction, OldestTasksGoFirst) {
  StateOptions opt;
  opt.max_tasks = 3;
  ClusterState st(opt);
  CountingListener listener;
  st.AddListener(&listener);
  const std::string_view ids[] = {kU1, kU2, kU3, kU4, kU5};
  double ts = 1;
  for (std::string_view id : ids) {
    Received(st, id, ts++);
  }
  EXPECT_EQ(st.task_count(), 3u);
  EXPECT_EQ(st.FindTask(kU1), nullptr);
  EXPECT_EQ(st.FindTask(kU2), nullptr);
  EXPECT_NE(st.FindTask(kU3), nullptr);
  EXPECT_NE(st.FindTask(kU5), nullptr);
  EXPECT_EQ(st.counters().tasks_created, 5u);
  EXPECT_EQ(st.counters().tasks_evicted, 2u);
  EXPECT_EQ(listener.evicted, (std::vector<std::string>{std::string(kU1), std::string(kU2)}));
  EXPECT_EQ(st.FindWorker(kW1)->unfinished.size(), 3u) << "evicted tasks leave the worker's gauges";

  std::vector<std::string> order;
  st.ForEachTaskNewestFirst([&](const Task& t) {
    order.push_back(t.IdString());
    return true;
  });
  EXPECT_EQ(order, (std::vector<std::string>{std::string(kU5), std::string(kU4), std::string(kU3)}));

  // Updating an old task does not refresh it (as Celery's .data[...] access): U3 is still next.
  Simple(st, "task-started", kU3, 10);
  Received(st, kU6, 11);
  EXPECT_EQ(st.FindTask(kU3), nullptr);
  EXPECT_NE(st.FindTask(kU4), nullptr);
  EXPECT_EQ(st.counters().tasks_evicted, 3u);

  // An event for an evicted id re-creates it (as a new record).
  Simple(st, "task-succeeded", kU1, 12);
  EXPECT_EQ(StateOf(st, kU1), "SUCCESS");
  EXPECT_EQ(st.task_count(), 3u);
  EXPECT_EQ(st.counters().tasks_created, 7u);
}

TEST(StateEviction, ZeroMaxTasksKeepsNothing) {
  StateOptions opt;
  opt.max_tasks = 0;
  ClusterState st(opt);
  Received(st, kU1, 1);
  EXPECT_EQ(st.task_count(), 0u);
  EXPECT_EQ(st.FindTask(kU1), nullptr);
}

// ------------------------------------------------------------------ (h) non-uuid ids

TEST(StateIds, NonUuidTaskIdsWorkAndRoundTrip) {
  ClusterState st;
  Event r = TaskEv("task-received", "my-id-1", 1);
  r.name = S("tasks.custom");
  r.root_id = S("my-root");
  r.parent_id = S("my-parent-1");
  Feed(st, r);
  Event p = TaskEv("task-received", "my-parent-1", 0.5);
  Feed(st, p);
  Simple(st, "task-succeeded", "my-id-1", 2);
  const Task* t = st.FindTask("my-id-1");
  ASSERT_NE(t, nullptr);
  EXPECT_TRUE(t->text_id);
  EXPECT_EQ(t->IdString(), "my-id-1");
  EXPECT_EQ(t->state, TaskState::kSuccess);
  EXPECT_EQ(st.FindTask("my-id-2"), nullptr);

  const json j = TaskJson(st, "my-id-1");
  EXPECT_EQ(j["uuid"], "my-id-1");
  EXPECT_EQ(j["root_id"], "my-root");
  EXPECT_EQ(j["root"], "my-root");
  EXPECT_EQ(j["parent_id"], "my-parent-1");

  // An upper-case uuid is kept as text and round-trips exactly; it is a different id from the
  // lower-case one (Celery compares ids as strings too).
  const std::string_view upper = "5484A2C1-8F0E-4D3B-9A6C-7E1F2D3C4B5A";
  Received(st, upper, 3);
  ASSERT_NE(st.FindTask(upper), nullptr);
  EXPECT_EQ(st.FindTask(upper)->IdString(), upper);
  EXPECT_EQ(st.FindTask(kU1), nullptr);
  EXPECT_EQ(TaskJson(st, upper)["uuid"], upper);

  // With eviction, text ids leave their index too.
  StateOptions opt;
  opt.max_tasks = 1;
  ClusterState small(opt);
  Received(small, "a", 1);
  Received(small, "b", 2);
  EXPECT_EQ(small.FindTask("a"), nullptr);
  ASSERT_NE(small.FindTask("b"), nullptr);
}

// ------------------------------------------------------------------ (i) parent / children

TEST(StateLinks, ParentAndChildren) {
  ClusterState st;
  Received(st, kU1, 1);  // parent
  for (std::string_view child : {kU2, kU3}) {
    Event c = TaskEv("task-received", child, 2);
    c.name = S("tasks.child");
    c.root_id = S(kU1);
    c.parent_id = S(kU1);
    Feed(st, c);
  }
  // Later events of a child repeat nothing; a second parent_id must not duplicate the link.
  Event again = TaskEv("task-received", kU2, 2.5);
  again.parent_id = S(kU1);
  Feed(st, again);
  Simple(st, "task-started", kU2, 3);

  const Task* parent = st.FindTask(kU1);
  ASSERT_NE(parent, nullptr);
  std::vector<uint64_t> want{st.FindTask(kU2)->seq, st.FindTask(kU3)->seq};
  EXPECT_EQ(st.Children(*parent), want);
  EXPECT_TRUE(st.Children(*st.FindTask(kU2)).empty());

  const json pj = TaskJson(st, kU1);
  EXPECT_EQ(pj["children"], json::array({std::string(kU2), std::string(kU3)}));
  EXPECT_EQ(pj["parent_id"], nullptr) << "Received() sends parent_id null";
  const json cj = TaskJson(st, kU2);
  EXPECT_EQ(cj["parent_id"], kU1);
  EXPECT_EQ(cj["parent"], kU1);
  EXPECT_EQ(cj["root_id"], kU1);
  EXPECT_EQ(cj["root"], kU1);
}

TEST(StateLinks, EvictedChildLeavesChildrenList) {
  // The ring evicts in creation order, so a linked child can be evicted before its parent only if
  // the child's record is older: first seen through task-started, linked by a later task-received.
  StateOptions opt;
  opt.max_tasks = 3;
  ClusterState st(opt);
  Simple(st, "task-started", kU2, 1);  // child record created first, parent unknown
  Received(st, kU1, 2);                // parent
  Event c = TaskEv("task-received", kU2, 0.5);
  c.parent_id = S(kU1);
  Feed(st, c);  // older than task-started: only fills, but links the child
  const Task* parent = st.FindTask(kU1);
  ASSERT_NE(parent, nullptr);
  EXPECT_EQ(st.Children(*parent), std::vector<uint64_t>{st.FindTask(kU2)->seq});
  Received(st, kU3, 3);
  Received(st, kU4, 4);  // evicts the child (oldest record)
  EXPECT_EQ(st.FindTask(kU2), nullptr);
  parent = st.FindTask(kU1);
  ASSERT_NE(parent, nullptr);
  EXPECT_TRUE(st.Children(*parent).empty());
  EXPECT_EQ(TaskJson(st, kU1)["children"], json::array());
  Received(st, kU5, 5);  // evicts the parent and its children entry
  EXPECT_EQ(st.FindTask(kU1), nullptr);
}

// Celery resolves a child seen before its parent when the parent appears (State._tasks_to_resolve,
// celery/events/state.py `_add_pending_task_child`), so Flower shows the link. This happens whenever
// Stalk starts while a parent is running: the child's events come first, the parent's
// task-succeeded creates the parent later.
TEST(StateLinks, ChildSeenBeforeParentIsLinkedWhenParentAppears) {
  ClusterState st;
  Event c = TaskEv("task-received", kU2, 1);
  c.parent_id = S(kU1);
  c.root_id = S(kU1);
  Feed(st, c);
  Simple(st, "task-succeeded", kU1, 2);  // parent first seen now
  const Task* parent = st.FindTask(kU1);
  ASSERT_NE(parent, nullptr);
  EXPECT_EQ(st.Children(*parent), std::vector<uint64_t>{st.FindTask(kU2)->seq})
      << "child that arrived before its parent is never linked";
}

// ------------------------------------------------------------------ (j) truncation

TEST(StateLimits, HugeResultIsTruncatedWithMarker) {
  StateOptions opt;
  opt.max_field_bytes = 100;
  opt.max_traceback_bytes = 200;
  ClusterState st(opt);
  const std::string huge(10000, 'x');
  Received(st, kU1, 1);
  Event ok = TaskEv("task-succeeded", kU1, 2);
  ok.result = S(huge);
  Feed(st, ok);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  const std::string_view r = t->result.view();
  EXPECT_EQ(r, std::string(100, 'x') + "... [truncated by stalk: 10000 bytes]");
  EXPECT_EQ(st.counters().fields_truncated, 1u);

  // Traceback has its own limit; short fields are untouched.
  Event fail = TaskEv("task-failed", kU2, 3);
  const std::string tb(1000, 't');
  fail.traceback = S(tb);
  fail.exception = S("ValueError('short')");
  Feed(st, fail);
  const Task* f = st.FindTask(kU2);
  EXPECT_EQ(f->traceback.view().substr(0, 200), std::string(200, 't'));
  EXPECT_NE(f->traceback.view().find("[truncated by stalk: 1000 bytes]"), std::string_view::npos);
  EXPECT_EQ(f->exception.view(), "ValueError('short')");
  EXPECT_EQ(st.counters().fields_truncated, 2u);

  // The JSON stays valid and carries the marker.
  EXPECT_NE(TaskJson(st, kU1)["result"].get<std::string>().find("truncated by stalk"), std::string::npos);
}

// Task::truncated (task.h) is declared but nothing in state/ sets it.
TEST(StateLimits, TruncatedFlagIsSet) {
  StateOptions opt;
  opt.max_field_bytes = 10;
  ClusterState st(opt);
  Event ok = TaskEv("task-succeeded", kU1, 2);
  ok.result = S("0123456789abcdef");
  Feed(st, ok);
  ASSERT_NE(st.FindTask(kU1), nullptr);
  EXPECT_EQ(st.counters().fields_truncated, 1u);
  EXPECT_TRUE(st.FindTask(kU1)->truncated) << "Task::truncated exists but nothing sets it";
}

TEST(StateLimits, TruncationNeverSplitsUtf8) {
  StateOptions opt;
  opt.max_field_bytes = 101;  // 50 x "é" (2 bytes) = 100, the 51st starts at byte 100
  ClusterState st(opt);
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text += "\xC3\xA9";
  }
  Event ok = TaskEv("task-succeeded", kU1, 2);
  ok.result = S(text);
  Feed(st, ok);
  const std::string_view r = st.FindTask(kU1)->result.view();
  const size_t cut = r.find("... [truncated");
  ASSERT_NE(cut, std::string_view::npos);
  EXPECT_EQ(cut, 100u);
  EXPECT_EQ(r.substr(0, cut), text.substr(0, 100));
  // The writer would replace a split sequence with U+FFFD; there must be none.
  EXPECT_EQ(TaskJson(st, kU1)["result"].get<std::string>().find("\xEF\xBF\xBD"), std::string::npos);
}

// ------------------------------------------------------------------ (k) utcoffset

// Celery's receiver shifts timestamps by (event.utcoffset - receiver.utcoffset) x 3600 (§2.4). Stalk
// keeps them as sent: `timestamp` is time.time(), epoch seconds in every zone, so the shift would
// misplace events of workers in other zones by hours.
TEST(StateClock, UtcoffsetAdjustsTimestampsLikeCelery) {
  ClusterState st;
  Event ny = TaskEv("task-received", kU1, 1795655140.0);
  ny.utcoffset = 5;
  Feed(st, ny);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_DOUBLE_EQ(t->received, 1795655140.0) << "Celery would show 1795655140 - 5 x 3600";
  EXPECT_DOUBLE_EQ(t->timestamp, 1795655140.0);

  // No timestamp: the local receive time is used as is.
  Event bare = TaskEv("task-received", kU3, 0);
  bare.has_timestamp = false;
  bare.utcoffset = 5;
  st.Apply(bare, 1795655150.0);
  EXPECT_DOUBLE_EQ(st.FindTask(kU3)->received, 1795655150.0);
}

// ------------------------------------------------------------------ (l) custom events

TEST(StateMerge, CustomTaskEventGivesUppercaseState) {
  ClusterState st;
  Received(st, kU1, 1);
  Simple(st, "task-started", kU1, 2);
  Event prog = TaskEv("task-progress", kU1, 3);
  prog.result = S("{'pct': 50}");
  Feed(st, prog);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kCustom);
  EXPECT_EQ(st.StateName(*t), "PROGRESS");
  EXPECT_EQ(TaskJson(st, kU1)["state"], "PROGRESS");
  EXPECT_TRUE(Unfinished(st, kW1, kU1));
  EXPECT_EQ(Ids(RunTaskQuery(st, TaskQuery{.state = "PROGRESS"})), std::vector<std::string>{std::string(kU1)});

  Simple(st, "task-succeeded", kU1, 4);
  EXPECT_EQ(StateOf(st, kU1), "SUCCESS");
  EXPECT_FALSE(Unfinished(st, kW1, kU1));

  // task-cancelled is not in Celery's table: custom state CANCELLED (§2.3).
  Received(st, kU2, 5);
  Simple(st, "task-cancelled", kU2, 6);
  EXPECT_EQ(StateOf(st, kU2), "CANCELLED");
}

// ------------------------------------------------------------------ (m) late task-sent

TEST(StateMerge, TaskSentAfterStartedDoesNotMoveToPending) {
  ClusterState st;
  Simple(st, "task-started", kU1, 12);
  Event sent = TaskEv("task-sent", kU1, 10, kClient);  // the client's event is slower
  sent.name = S("tasks.add");
  sent.args = S("(2, 3)");
  sent.queue = S("celery");
  sent.exchange = S("");
  sent.routing_key = S("celery");
  Feed(st, sent);
  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->state, TaskState::kStarted);
  EXPECT_EQ(t->timestamp, 12);
  EXPECT_EQ(t->sent, 10);
  EXPECT_EQ(st.Name(t->client), kClient);
  EXPECT_EQ(st.Name(t->worker), kW1) << "task-sent's hostname is the client, not the worker";
  EXPECT_EQ(st.Name(t->name), "tasks.add");
  EXPECT_EQ(st.Name(t->queue), "celery");
  EXPECT_TRUE(Unfinished(st, kW1, kU1));

  // Also after a final state.
  Simple(st, "task-succeeded", kU2, 5);
  Event sent2 = TaskEv("task-sent", kU2, 4, kClient);
  Feed(st, sent2);
  EXPECT_EQ(StateOf(st, kU2), "SUCCESS");
}

// ------------------------------------------------------------------ (n) unfinished bookkeeping

TEST(StateWorkers, UnfinishedSetFollowsTaskStates) {
  ClusterState st;
  Received(st, kU1, 1);
  EXPECT_TRUE(Unfinished(st, kW1, kU1));
  Simple(st, "task-started", kU1, 2);
  EXPECT_TRUE(Unfinished(st, kW1, kU1));
  Received(st, kU2, 3);
  Received(st, kU3, 4);
  Received(st, kU4, 5);
  Received(st, kU5, 6);
  EXPECT_EQ(st.FindWorker(kW1)->unfinished.size(), 5u);

  Simple(st, "task-succeeded", kU1, 7);
  EXPECT_FALSE(Unfinished(st, kW1, kU1));
  Simple(st, "task-revoked", kU2, 8);
  EXPECT_FALSE(Unfinished(st, kW1, kU2));
  Event rej = TaskEv("task-rejected", kU3, 9);
  rej.requeue = false;
  Feed(st, rej);
  EXPECT_FALSE(Unfinished(st, kW1, kU3));
  Simple(st, "task-failed", kU4, 10);
  EXPECT_FALSE(Unfinished(st, kW1, kU4));
  Simple(st, "task-retried", kU5, 11);
  EXPECT_TRUE(Unfinished(st, kW1, kU5)) << "RETRY counts as unfinished (task.h)";
  EXPECT_EQ(st.FindWorker(kW1)->unfinished.size(), 1u);

  // PENDING (only sent) is on no worker.
  Event sent = TaskEv("task-sent", kU6, 12, kClient);
  Feed(st, sent);
  EXPECT_EQ(st.FindWorker(kW1)->unfinished.size(), 1u);
}

// ------------------------------------------------------------------ (o) RunTaskQuery

// Five tasks, created in this order (base order is newest first: T5 T4 T3 T2 T1):
//   T1 tasks.add   w1 SUCCESS  received 10 started 11  args (2, 3)   kwargs {'x': 1, 'name': 'John Smith'}
//   result 5 T2 tasks.mul   w2 FAILURE  received 20 started 21  args (4, 5) T3 tasks.add   w1 STARTED
//   received 20 started 25  args (12, 30) T4 tasks.sleep -- PENDING  (sent only, no worker) T5 tasks.add   w2
//   PROGRESS received 5  started 6   args (7,)
class TaskQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Add(kT1, "task-received", 10, kW1, "tasks.add", "(2, 3)", "{'x': 1, 'name': 'John Smith'}");
    Simple(st_, "task-started", kT1, 11, kW1);
    Event ok = TaskEv("task-succeeded", kT1, 12, kW1);
    ok.result = S("5");
    ok.runtime = 1.0;
    Feed(st_, ok);

    Add(kT2, "task-received", 20, kW2, "tasks.mul", "(4, 5)", "{}");
    Simple(st_, "task-started", kT2, 21, kW2);
    Event fail = TaskEv("task-failed", kT2, 22, kW2);
    fail.exception = S("ZeroDivisionError('x')");
    Feed(st_, fail);

    Add(kT3, "task-received", 20, kW1, "tasks.add", "(12, 30)", "{'x': 2}");
    Simple(st_, "task-started", kT3, 25, kW1);

    Add(kT4, "task-sent", 30, kClient, "tasks.sleep", "(1,)", "{}");

    Add(kT5, "task-received", 5, kW2, "tasks.add", "(7,)", "{}");
    Simple(st_, "task-started", kT5, 6, kW2);
    Simple(st_, "task-progress", kT5, 7, kW2);
  }
  void Add(std::string_view id, std::string_view type, double ts, std::string_view host, std::string_view name,
           std::string_view args, std::string_view kwargs) {
    Event e = TaskEv(type, id, ts, host);
    e.name = S(name);
    e.args = S(args);
    e.kwargs = S(kwargs);
    Feed(st_, e);
  }
  std::vector<std::string> Q(TaskQuery q) { return Ids(RunTaskQuery(st_, q)); }
  static std::vector<std::string> V(std::initializer_list<std::string_view> ids) {
    return std::vector<std::string>(ids.begin(), ids.end());
  }

  static constexpr std::string_view kT1 = "11111111-1111-4111-8111-111111111111";
  static constexpr std::string_view kT2 = "22222222-2222-4222-8222-222222222222";
  static constexpr std::string_view kT3 = "33333333-3333-4333-8333-333333333333";
  static constexpr std::string_view kT4 = "44444444-4444-4444-8444-444444444444";
  static constexpr std::string_view kT5 = "55555555-5555-4555-8555-555555555555";
  ClusterState st_;
};

TEST_F(TaskQueryTest, NoFilterIsNewestFirst) { EXPECT_EQ(Q({}), V({kT5, kT4, kT3, kT2, kT1})); }

TEST_F(TaskQueryTest, FilterByTaskname) {
  EXPECT_EQ(Q({.taskname = "tasks.add"}), V({kT5, kT3, kT1}));
  EXPECT_EQ(Q({.taskname = "All"}), V({kT5, kT4, kT3, kT2, kT1}));
  EXPECT_TRUE(Q({.taskname = "tasks.nope"}).empty());
  EXPECT_TRUE(Q({.taskname = std::string(kW1)}).empty()) << "a known string that is not a task name";
}

TEST_F(TaskQueryTest, FilterByWorkername) {
  // Flower keeps tasks that have no worker yet (T4) when filtering by worker.
  EXPECT_EQ(Q({.workername = std::string(kW1)}), V({kT4, kT3, kT1}));
  EXPECT_EQ(Q({.workername = std::string(kW2)}), V({kT5, kT4, kT2}));
  // Unknown worker: empty. (Flower would still list worker-less tasks such as T4; Stalk returns
  // nothing, which is what the brief asks for.)
  EXPECT_TRUE(Q({.workername = "ghost@lab"}).empty());
}

TEST_F(TaskQueryTest, FilterByState) {
  EXPECT_EQ(Q({.state = "SUCCESS"}), V({kT1}));
  EXPECT_EQ(Q({.state = "FAILURE"}), V({kT2}));
  EXPECT_EQ(Q({.state = "PENDING"}), V({kT4}));
  EXPECT_EQ(Q({.state = "PROGRESS"}), V({kT5}));
  EXPECT_EQ(Q({.state = "All"}).size(), 5u);
  EXPECT_TRUE(Q({.state = "BOGUS"}).empty());
  EXPECT_TRUE(Q({.state = "REVOKED"}).empty());
  EXPECT_TRUE(Q({.state = "CUSTOM"}).empty()) << "the internal enum name is not a state";
  EXPECT_EQ(Q({.workername = std::string(kW1), .taskname = "tasks.add", .state = "STARTED"}), V({kT3}));
}

TEST_F(TaskQueryTest, ReceivedAndStartedWindows) {
  // Flower: a task without the timestamp is not filtered out.
  EXPECT_EQ(Q({.received_start = 15.0}), V({kT4, kT3, kT2}));
  EXPECT_EQ(Q({.received_end = 10.0}), V({kT5, kT4, kT1}));
  EXPECT_EQ(Q({.started_start = 11.0, .started_end = 21.0}), V({kT4, kT2, kT1}));
}

TEST_F(TaskQueryTest, PagingUnsorted) {
  EXPECT_EQ(Q({.limit = 2}), V({kT5, kT4}));
  EXPECT_EQ(Q({.limit = 2, .offset = 2}), V({kT3, kT2}));
  EXPECT_EQ(Q({.limit = 10, .offset = 4}), V({kT1}));
  EXPECT_TRUE(Q({.limit = 10, .offset = 5}).empty());
  EXPECT_EQ(Q({.offset = 3}), V({kT2, kT1}));
  EXPECT_EQ(Q({.limit = 1, .taskname = "tasks.add"}), V({kT5}));
  EXPECT_EQ(Q({.limit = 1, .offset = 1, .taskname = "tasks.add"}), V({kT3}));
}

TEST_F(TaskQueryTest, PagingSorted) {
  EXPECT_EQ(Q({.limit = 2, .offset = 1, .sort_by = "name"}), V({kT3, kT1}));
  EXPECT_EQ(Q({.limit = 2, .offset = 4, .sort_by = "name"}), V({kT4}));
  EXPECT_TRUE(Q({.limit = 2, .offset = 9, .sort_by = "name"}).empty());
}

// limit=0 means "no limit" on both paths, as in Flower (its iter_tasks never reaches i == 0 + offset).
TEST_F(TaskQueryTest, LimitZeroIsConsistentBetweenSortedAndUnsorted) {
  const auto unsorted = Q({.limit = 0});
  const auto sorted = Q({.limit = 0, .sort_by = "name"});
  EXPECT_EQ(unsorted.size(), sorted.size()) << "unsorted returned " << unsorted.size() << ", sorted " << sorted.size();
  EXPECT_EQ(unsorted.size(), 5u);
}

TEST_F(TaskQueryTest, SortByNameTiesKeepNewestFirst) {
  // Python's sorted() is stable in both directions: equal names keep the base (newest-first) order.
  EXPECT_EQ(Q({.sort_by = "name"}), V({kT5, kT3, kT1, kT2, kT4}));
  EXPECT_EQ(Q({.sort_by = "-name"}), V({kT4, kT2, kT5, kT3, kT1}));
}

TEST_F(TaskQueryTest, SortByReceivedAndStarted) {
  // received: T1 10, T2 20, T3 20, T4 none (sorts as 0), T5 5.
  EXPECT_EQ(Q({.sort_by = "-received"}), V({kT3, kT2, kT1, kT5, kT4}));
  EXPECT_EQ(Q({.sort_by = "received"}), V({kT4, kT5, kT1, kT3, kT2}));
  // started: T1 11, T2 21, T3 25, T4 none, T5 6.
  EXPECT_EQ(Q({.sort_by = "started"}), V({kT4, kT5, kT1, kT2, kT3}));
  EXPECT_EQ(Q({.sort_by = "-started"}), V({kT3, kT2, kT1, kT5, kT4}));
  EXPECT_EQ(Q({.sort_by = "state"}), V({kT2, kT4, kT5, kT3, kT1}));  // FAILURE PENDING PROGRESS STARTED SUCCESS
  EXPECT_EQ(Q({.sort_by = "-runtime"}).front(), std::string(kT1));
}

TEST_F(TaskQueryTest, InvalidSortByIsAnError) {
  for (std::string bad : {"bogus", "-bogus", "args", "--name", "Name"}) {
    const auto r = RunTaskQuery(st_, TaskQuery{.sort_by = bad});
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().empty());
    }
  }
}

TEST_F(TaskQueryTest, SearchArgs) {
  EXPECT_EQ(Q({.search = "args:2"}), V({kT3, kT1}));
  EXPECT_EQ(Q({.search = "args:2 args:3"}), V({kT3, kT1}));  // all args terms must be in args
  EXPECT_EQ(Q({.search = "args:4"}), V({kT2}));
  EXPECT_EQ(Q({.search = "args:2 args:5"}), V({}));
}

TEST_F(TaskQueryTest, SearchKwargs) {
  EXPECT_EQ(Q({.search = "kwargs:x=1"}), V({kT1}));
  EXPECT_EQ(Q({.search = "kwargs:x=2"}), V({kT3}));
  EXPECT_EQ(Q({.search = R"J(kwargs:name="John Smith")J"}), V({kT1}));
  EXPECT_EQ(Q({.search = "kwargs:x=1 kwargs:name=John"}), V({}));  // exact value match, all must hold
  EXPECT_EQ(Q({.search = "kwargs:x=3"}), V({}));
  EXPECT_EQ(Q({.search = "kwargs:nokey"}), V({kT5, kT4, kT3, kT2, kT1})) << "Flower drops a kwargs term without '='";
}

// The search scan reads tasks through a prefetch window (16 tasks ahead): order, offset, limit and
// the tasks at the end of the window must come out as without it.
TEST_F(TaskQueryTest, SearchOverManyTasksKeepsOrderOffsetAndLimit) {
  std::vector<std::string> hits;  // newest first
  for (int i = 0; i < 60; ++i) {
    char id[48];  // room for any int: GCC checks the bound, not the loop
    std::snprintf(id, sizeof id, "%08d-aaaa-4aaa-8aaa-aaaaaaaaaaaa", i);
    const bool hit = i % 3 == 0;
    Add(id, "task-received", 100 + i, kW1, "tasks.many", hit ? "('needle-in-args-" + std::to_string(i) + "',)" : "(1,)",
        "{}");
    if (hit)
      hits.insert(hits.begin(), id);
  }
  EXPECT_EQ(Q({.search = "needle-in-args"}), hits);
  EXPECT_EQ(Q({.limit = 5, .offset = 3, .search = "needle-in-args"}),
            std::vector<std::string>(hits.begin() + 3, hits.begin() + 8));
  EXPECT_EQ(Q({.limit = 3, .offset = 18, .search = "needle-in-args"}),
            std::vector<std::string>(hits.begin() + 18, hits.end()));  // the last two: from the window's tail
  EXPECT_EQ(Q({.search = "needle-in-args-0'"}), V({"00000000-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}));  // the oldest task
  EXPECT_EQ(Q({.search = "00000057-aaaa"}), V({"00000057-aaaa-4aaa-8aaa-aaaaaaaaaaaa"}));      // by id (hex)
  EXPECT_EQ(Q({.sort_by = "received", .search = "tasks.many"}).front(), "00000000-aaaa-4aaa-8aaa-aaaaaaaaaaaa");
}

TEST_F(TaskQueryTest, SearchResultStateAndFreeText) {
  EXPECT_EQ(Q({.search = "result:5"}), V({kT1}));
  EXPECT_EQ(Q({.search = "state:FAILURE"}), V({kT2}));
  EXPECT_EQ(Q({.search = "state:FAILURE state:PENDING"}), V({kT4, kT2}));
  EXPECT_EQ(Q({.search = "tasks.mul"}), V({kT2}));
  EXPECT_EQ(Q({.search = std::string(kW2)}), V({kT5, kT2}));  // worker hostname
  EXPECT_EQ(Q({.search = "44444444"}), V({kT4}));             // uuid
  EXPECT_EQ(Q({.search = "John"}), V({kT1}));                 // kwargs text
  EXPECT_EQ(Q({.search = "PROGRESS"}), V({kT5}));             // state text
  // Terms of different kinds: a task matches if any kind matches.
  EXPECT_EQ(Q({.search = "state:PENDING result:5"}), V({kT4, kT1}));
  // Search combines with filters (AND).
  EXPECT_EQ(Q({.taskname = "tasks.add", .search = "state:STARTED"}), V({kT3}));
  EXPECT_EQ(Q({.search = ""}).size(), 5u);
}

TEST(TaskQueryTime, ParsesEpochAndFlowerFormat) {
  EXPECT_EQ(ParseQueryTime("1795655136.5"), std::optional<double>(1795655136.5));
  std::tm tm{};
  tm.tm_year = 2026 - 1900;
  tm.tm_mon = 10;
  tm.tm_mday = 26;
  tm.tm_hour = 1;
  tm.tm_min = 11;
  tm.tm_isdst = -1;
  EXPECT_EQ(ParseQueryTime("2026-11-26 01:11"), std::optional<double>(static_cast<double>(std::mktime(&tm))));
  EXPECT_EQ(ParseQueryTime("garbage"), std::nullopt);
  EXPECT_EQ(ParseQueryTime("2026-11-26"), std::nullopt);
  EXPECT_EQ(ParseQueryTime("2026-11-26 01:11 extra"), std::nullopt);
}

// ------------------------------------------------------------------ (p) WriteTaskJson

const char* const kFlowerTaskFields[] = {
    "uuid",   "name",    "state",     "received",  "sent",    "started",   "rejected", "succeeded",
    "failed", "retried", "revoked",   "args",      "kwargs",  "eta",       "expires",  "retries",
    "worker", "result",  "exception", "timestamp", "runtime", "traceback", "exchange", "routing_key",
    "clock",  "client",  "root",      "root_id",   "parent",  "parent_id", "children"};

TEST(TaskJson, MinimalTaskHasEveryFlowerFieldWithNulls) {
  ClusterState st;
  Event e = TaskEv("task-started", kU1, 1795655140.2345);
  e.clock = 12;
  e.has_clock = true;
  Feed(st, e);
  const json j = TaskJson(st, kU1);
  ASSERT_TRUE(j.is_object());
  for (const char* f : kFlowerTaskFields) {
    EXPECT_TRUE(j.contains(f)) << "missing field " << f;
  }
  EXPECT_EQ(j["uuid"], kU1);
  EXPECT_EQ(j["state"], "STARTED");
  EXPECT_EQ(j["worker"], kW1);
  EXPECT_DOUBLE_EQ(j["started"].get<double>(), 1795655140.2345);
  EXPECT_DOUBLE_EQ(j["timestamp"].get<double>(), 1795655140.2345);
  EXPECT_EQ(j["clock"], 12);
  EXPECT_EQ(j["children"], json::array());
  for (const char* f :
       {"name",      "received", "sent",        "rejected", "succeeded", "failed",  "retried",   "revoked",
        "args",      "kwargs",   "eta",         "expires",  "retries",   "result",  "exception", "runtime",
        "traceback", "exchange", "routing_key", "client",   "root",      "root_id", "parent",    "parent_id"}) {
    EXPECT_TRUE(j[f].is_null()) << f << " should be null, is " << j[f].dump();
  }
  EXPECT_FALSE(j.contains("task-id"));
}

TEST(TaskJson, FullTaskValuesAndTypes) {
  ClusterState st;
  Event sent = TaskEv("task-sent", kU1, 10, kClient);
  sent.name = S("tasks.add");
  sent.args = S("(2, 3)");
  sent.kwargs = S("{'k': \"v\"}");
  sent.retries = 0;
  sent.eta = S("2026-11-26T01:11:25.554841+00:00");
  sent.expires = Null();
  sent.exchange = S("");
  sent.routing_key = S("celery");
  sent.queue = S("celery");
  sent.root_id = S(kU2);
  sent.parent_id = S(kU2);
  Feed(st, sent);
  Received(st, kU2, 9);  // the parent (created after the child; see ChildSeenBeforeParent…)
  Received(st, kU1, 11);
  Simple(st, "task-started", kU1, 12);
  Event fail = TaskEv("task-failed", kU1, 13);
  fail.exception = S("ValueError('kaboom')");
  fail.traceback = S("Traceback (most recent call last):\n  File \"x.py\"\nValueError: kaboom\n\x01");
  fail.clock = 99;
  fail.has_clock = true;
  Feed(st, fail);

  const Task* t = st.FindTask(kU1);
  ASSERT_NE(t, nullptr);
  JsonWriter w;
  WriteTaskJson(st, *t, w, /*with_task_id=*/true);
  const json j = json::parse(w.str());
  for (const char* f : kFlowerTaskFields) {
    EXPECT_TRUE(j.contains(f)) << "missing field " << f;
  }
  EXPECT_EQ(j["task-id"], kU1);
  EXPECT_EQ(j["name"], "tasks.add");
  EXPECT_EQ(j["state"], "FAILURE");
  EXPECT_EQ(j["sent"], 10.0);
  EXPECT_EQ(j["received"], 11.0);
  EXPECT_EQ(j["started"], 12.0);
  EXPECT_EQ(j["failed"], 13.0);
  EXPECT_EQ(j["timestamp"], 13.0);
  EXPECT_TRUE(j["received"].is_number_float());
  EXPECT_EQ(j["args"], "(2, 3)");
  EXPECT_EQ(j["kwargs"], "{}") << "task-received's kwargs (a newer state) replaced task-sent's";
  EXPECT_EQ(j["eta"], nullptr) << "task-received (Received()) sent eta null over task-sent's value";
  EXPECT_EQ(j["retries"], 0);
  EXPECT_TRUE(j["retries"].is_number_integer());
  EXPECT_EQ(j["worker"], kW1);
  EXPECT_EQ(j["client"], kClient);
  EXPECT_EQ(j["exception"], "ValueError('kaboom')");
  EXPECT_EQ(j["traceback"], "Traceback (most recent call last):\n  File \"x.py\"\nValueError: kaboom\n\x01");
  EXPECT_EQ(j["result"], nullptr);
  EXPECT_EQ(j["runtime"], nullptr);
  EXPECT_EQ(j["exchange"], "");
  EXPECT_EQ(j["routing_key"], "celery");
  EXPECT_EQ(j["queue"], "celery");
  EXPECT_EQ(j["clock"], 99);
  EXPECT_EQ(j["lost"], false);
  EXPECT_EQ(j["lost_at"], nullptr);
}

// ------------------------------------------------------------------ decoder -> state

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(STALK_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') {
    s.pop_back();
  }
  return s;
}

TEST(StatePipeline, CapturedPayloadsThroughDecoder) {
  ClusterState st;
  EventDecoder dec;
  size_t rejects = 0;
  auto apply = [&](const Event& e) { st.Apply(e, e.timestamp); };  // views valid during the call
  auto reject = [&](RejectReason, std::string_view) { ++rejects; };
  EXPECT_EQ(dec.DecodeKombuEnvelope(ReadData("redis_worker_heartbeat.json"), apply, reject), 1u);
  EXPECT_EQ(dec.DecodeKombuEnvelope(ReadData("redis_task_multi.json"), apply, reject), 2u);
  EXPECT_EQ(dec.DecodeBody("application/json", ReadData("amqp_task_multi_body.json"), apply, reject), 2u);
  EXPECT_EQ(rejects, 0u);

  EXPECT_EQ(StateOf(st, "53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11"), "FAILURE");
  EXPECT_EQ(st.FindTask("53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11")->exception.view(), "NotRegistered('nonexistent.task')");
  EXPECT_TRUE(st.FindTask("53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11")->traceback.is_null());
  const Task* t = st.FindTask("5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(st.StateName(*t), "SUCCESS");
  EXPECT_EQ(st.Name(t->name), "tasks.add");
  EXPECT_EQ(t->result.view(), "5");
  EXPECT_EQ(t->clock, 21);
  const Worker* w = st.FindWorker("w1@lab");
  ASSERT_NE(w, nullptr);
  EXPECT_DOUBLE_EQ(w->freq, 2.0);
  EXPECT_EQ(w->sw_ver, "5.2.6");
  EXPECT_TRUE(w->unfinished.empty());
}

}  // namespace
}  // namespace stalk
