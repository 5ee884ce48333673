// Stalk — Celery monitoring server.
// Unit tests of control/: the messages Stalk puts on the broker must match what Celery 5.2 / kombu
// 5.2 put there (the captured shapes of celery-protocol.md §3.2, §3.4, §5.2, §2.3), Python's repr
// for argsrepr/kwargsrepr and failed results, Flower's request-body rules for sending tasks, the
// inspect cache, and ControlService's outcomes over an in-memory transport (no broker).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/base64.h"
#include "control/control_service.h"
#include "control/inspect_cache.h"
#include "control/kombu_message.h"
#include "control/pidbox.h"
#include "control/python_repr.h"
#include "control/redis_control_transport.h"
#include "control/redis_result_backend.h"
#include "control/task_message.h"
#include "control/task_submission.h"
#include "transport/broker_url.h"

namespace stalk {
namespace {

using json = nlohmann::json;

std::set<std::string> Keys(const json& obj) {
  std::set<std::string> out;
  for (auto& [k, v] : obj.items())
    out.insert(k);
  return out;
}

json Envelope(const std::string& text) { return json::parse(text); }

json BodyOf(const json& env) {
  std::string raw;
  EXPECT_TRUE(Base64Decode(env["body"].get<std::string>(), raw));
  return json::parse(raw);
}

// ------------------------------------------------------------------ pidbox (§3.2, §3.4)

TEST(PidboxTest, PingRequestMatchesTheCapturedEnvelope) {
  ControlRequest ping{"ping", json::object(), {}, true, 0};
  KombuMessage m =
      EncodePidboxRequest(ping, "b8b0f7a5-ticket", "9c0d6512-e3a9-357c-8fc3-e71171bce7ae", 2, 1795655188.1520138);
  json env = Envelope(EncodeRedisEnvelope(m, kPidboxExchange, ""));

  EXPECT_EQ(Keys(env), (std::set<std::string>{"body", "content-encoding", "content-type", "headers", "properties"}));
  EXPECT_EQ(env["content-encoding"], "utf-8");
  EXPECT_EQ(env["content-type"], "application/json");
  EXPECT_EQ(env["headers"], (json{{"clock", 2}, {"expires", 1795655188.1520138}}));
  const json& props = env["properties"];
  EXPECT_EQ(Keys(props),
            (std::set<std::string>{"delivery_mode", "delivery_info", "priority", "body_encoding", "delivery_tag"}));
  EXPECT_EQ(props["delivery_mode"], 2);
  EXPECT_EQ(props["delivery_info"], (json{{"exchange", "celery.pidbox"}, {"routing_key", ""}}));
  EXPECT_EQ(props["priority"], 0);
  EXPECT_EQ(props["body_encoding"], "base64");
  EXPECT_EQ(props["delivery_tag"].get<std::string>().size(), 36u);

  json body = BodyOf(env);
  EXPECT_EQ(body,
            (json{{"method", "ping"},
                  {"arguments", json::object()},
                  {"destination", nullptr},
                  {"pattern", nullptr},
                  {"matcher", nullptr},
                  {"ticket", "b8b0f7a5-ticket"},
                  {"reply_to",
                   {{"exchange", "reply.celery.pidbox"}, {"routing_key", "9c0d6512-e3a9-357c-8fc3-e71171bce7ae"}}}}));
}

TEST(PidboxTest, CommandWithoutReplyHasNoTicketAndNamesItsDestination) {
  ControlRequest revoke{
      "revoke", {{"task_id", "abc"}, {"terminate", true}, {"signal", "SIGKILL"}}, {"w1@lab"}, false, 0};
  json body = json::parse(EncodePidboxRequest(revoke, "t", "oid", 1, 0).body);
  EXPECT_FALSE(body.contains("ticket"));
  EXPECT_FALSE(body.contains("reply_to"));
  EXPECT_EQ(body["destination"], json::array({"w1@lab"}));
  EXPECT_EQ(body["arguments"], (json{{"task_id", "abc"}, {"terminate", true}, {"signal", "SIGKILL"}}));
}

TEST(PidboxTest, DecodesTheCapturedReply) {
  // §3.4: LPUSH "9c0d….reply.celery.pidbox" {"body": <b64 {"w1@lab": {"ok": "pong"}}>, ...}
  json env = {{"body", Base64Encode(R"({"w1@lab": {"ok": "pong"}})")},
              {"content-encoding", "utf-8"},
              {"content-type", "application/json"},
              {"headers", {{"ticket", "b8b0f7a5-ticket"}, {"clock", 4}}},
              {"properties",
               {{"delivery_mode", 1},
                {"delivery_info", {{"exchange", "reply.celery.pidbox"}, {"routing_key", "9c0d"}}},
                {"priority", 0},
                {"body_encoding", "base64"},
                {"delivery_tag", "x"}}}};
  auto decoded = DecodeRedisEnvelope(env.dump());
  ASSERT_TRUE(decoded) << decoded.error();
  auto reply = DecodePidboxReply(*decoded);
  ASSERT_TRUE(reply) << reply.error();
  EXPECT_EQ(reply->ticket, "b8b0f7a5-ticket");
  ASSERT_EQ(reply->replies.size(), 1u);
  EXPECT_EQ(reply->replies[0].hostname, "w1@lab");
  EXPECT_EQ(reply->replies[0].body, (json{{"ok", "pong"}}));
}

TEST(PidboxTest, RejectsMalformedReplies) {
  EXPECT_FALSE(DecodeRedisEnvelope("not json"));
  EXPECT_FALSE(DecodeRedisEnvelope(R"({"headers": {}})"));
  EXPECT_FALSE(DecodeRedisEnvelope(R"({"body": "!!!", "properties": {"body_encoding": "base64"}})"));
  auto plain = DecodeRedisEnvelope(R"({"body": "[1]"})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(DecodePidboxReply(*plain));  // a list is not {node: result}
}

TEST(RedisNamesTest, ChannelsAndQueueKeysFollowKombu) {
  auto url = ParseBrokerUrl("redis://127.0.0.1:6411/3");
  ASSERT_TRUE(url);
  RedisControlTransport t(*url, RedisControlOptions{});
  EXPECT_EQ(t.PidboxChannel(), "/3.celery.pidbox");
  EXPECT_EQ(t.EventChannel("task.sent"), "/3.celeryev/task.sent");
  EXPECT_EQ(t.QueueKey("celery", 0), "celery");
  EXPECT_EQ(t.QueueKey("celery", 5), std::string("celery\x06\x16"
                                                 "3"));  // §5.2: priority 5 → step 3
  EXPECT_EQ(t.QueueKey("celery", 9), std::string("celery\x06\x16"
                                                 "9"));
  EXPECT_EQ(t.QueueKey("celery", 200), std::string("celery\x06\x16"
                                                   "9"));

  RedisControlOptions prefixed;
  prefixed.global_keyprefix = "app:";
  prefixed.fanout_prefix = "";
  RedisControlTransport p(*url, prefixed);
  EXPECT_EQ(p.PidboxChannel(), "app:celery.pidbox");
  EXPECT_EQ(p.QueueKey("q", 3), std::string("app:q\x06\x16"
                                            "3"));
}

// ------------------------------------------------------------------ task message (§5.1, §5.2)

TaskSpec AddSpec() {
  TaskSpec s;
  s.name = "tasks.add";
  s.id = "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a";
  s.args = json::array({2, 3});
  s.priority = 5;
  s.origin = "stalk@vm";
  s.reply_to = "5cee0000-0000-4000-8000-000000000000";
  return s;
}

TEST(TaskMessageTest, MatchesTheCapturedProtocolV2Message) {
  const TaskSpec spec = AddSpec();
  json env = Envelope(EncodeRedisEnvelope(EncodeTaskMessage(spec), "", "celery"));

  const json& h = env["headers"];
  // Exactly the captured header set of Celery 5.2's send_task.
  EXPECT_EQ(Keys(h), (std::set<std::string>{"lang", "task", "id", "shadow", "eta", "expires", "group", "group_index",
                                            "retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr",
                                            "origin", "ignore_result"}));
  EXPECT_EQ(h["lang"], "py");
  EXPECT_EQ(h["task"], "tasks.add");
  EXPECT_EQ(h["id"], spec.id);
  EXPECT_EQ(h["root_id"], spec.id);
  EXPECT_TRUE(h["parent_id"].is_null());
  EXPECT_TRUE(h["eta"].is_null());
  EXPECT_TRUE(h["expires"].is_null());
  EXPECT_EQ(h["retries"], 0);
  EXPECT_EQ(h["timelimit"], json::parse("[null, null]"));
  EXPECT_EQ(h["argsrepr"], "[2, 3]");  // a JSON array is a Python list (Celery's capture used a tuple)
  EXPECT_EQ(h["kwargsrepr"], "{}");
  EXPECT_EQ(h["origin"], "stalk@vm");
  EXPECT_EQ(h["ignore_result"], false);

  const json& p = env["properties"];
  EXPECT_EQ(p["correlation_id"], spec.id);
  EXPECT_EQ(p["reply_to"], spec.reply_to);
  EXPECT_EQ(p["delivery_mode"], 2);
  EXPECT_EQ(p["priority"], 5);
  EXPECT_EQ(p["delivery_info"], (json{{"exchange", ""}, {"routing_key", "celery"}}));
  EXPECT_EQ(p["body_encoding"], "base64");
  EXPECT_FALSE(p["delivery_tag"].get<std::string>().empty());  // mandatory: a 5.2 worker dies without it
  EXPECT_FALSE(p.contains("expiration"));

  EXPECT_EQ(BodyOf(env),
            json::parse(R"([[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])"));
}

TEST(TaskMessageTest, TimeLimitsAreHardThenSoftAndExpiresSetsExpiration) {
  TaskSpec s = AddSpec();
  s.time_limit = 100;
  s.soft_time_limit = 30;
  s.expires = "2026-11-26T01:11:25.554841+00:00";
  s.expires_in_seconds = 60;
  s.eta = "2026-11-26T01:10:25.000000+00:00";
  KombuMessage m = EncodeTaskMessage(s);
  EXPECT_EQ(m.headers["timelimit"], json::array({100.0, 30.0}));
  EXPECT_EQ(m.headers["expires"], s.expires);
  EXPECT_EQ(m.headers["eta"], s.eta);
  EXPECT_EQ(m.properties["expiration"], "60000");  // §1.4: a string in milliseconds
}

TEST(TaskMessageTest, TaskSentEventHasCeleryFields) {
  TaskSpec s = AddSpec();
  s.kwargs = {{"k", "v"}};
  KombuMessage m = EncodeTaskSentEvent(s, EventSender{"stalk@vm", 42, 0}, 7, 1795655188.5);
  json ev = json::parse(m.body);
  EXPECT_EQ(Keys(ev), (std::set<std::string>{"hostname", "utcoffset", "pid", "clock", "uuid", "root_id", "parent_id",
                                             "name", "args", "kwargs", "retries", "eta", "expires", "queue", "exchange",
                                             "routing_key", "timestamp", "type"}));
  EXPECT_EQ(ev["type"], "task-sent");
  EXPECT_EQ(ev["args"], "[2, 3]");
  EXPECT_EQ(ev["kwargs"], "{'k': 'v'}");
  EXPECT_EQ(ev["queue"], "celery");
  EXPECT_EQ(ev["exchange"], "");
  EXPECT_EQ(ev["routing_key"], "celery");
  EXPECT_EQ(m.headers["hostname"], "stalk@vm");
  json env = Envelope(EncodeRedisEnvelope(m, "celeryev", "task.sent"));
  EXPECT_EQ(env["properties"]["delivery_info"], (json{{"exchange", "celeryev"}, {"routing_key", "task.sent"}}));
}

// ------------------------------------------------------------------ Python repr

TEST(PythonReprTest, MatchesPython) {
  EXPECT_EQ(PythonRepr(json::parse(R"([1, "a", null, true, false, 1.0, 0.5, {"k": [2]}])")),
            "[1, 'a', None, True, False, 1.0, 0.5, {'k': [2]}]");
  EXPECT_EQ(PythonStrRepr("it's"), "\"it's\"");
  EXPECT_EQ(PythonStrRepr("say \"hi\" it's"), "'say \"hi\" it\\'s'");
  EXPECT_EQ(PythonStrRepr("a\nb\\c\x01"), "'a\\nb\\\\c\\x01'");
  EXPECT_EQ(PythonStrRepr("héllo"), "'héllo'");
  EXPECT_EQ(PythonFloatRepr(0.1), "0.1");
  EXPECT_EQ(PythonFloatRepr(100.0), "100.0");
  EXPECT_EQ(PythonFloatRepr(1e16), "1e+16");
  EXPECT_EQ(PythonFloatRepr(1.5e16), "1.5e+16");
  EXPECT_EQ(PythonFloatRepr(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(PythonFloatRepr(0.0001), "0.0001");
  EXPECT_EQ(PythonFloatRepr(0.00001), "1e-05");
  EXPECT_EQ(PythonFloatRepr(-2.5), "-2.5");
  EXPECT_EQ(PythonFloatRepr(0.0), "0.0");
}

TEST(PythonReprTest, ExceptionReprAsFlowerShowsFailedResults) {
  EXPECT_EQ(
      ExceptionRepr(json::parse(R"({"exc_type": "ValueError", "exc_message": ["kaboom"], "exc_module": "builtins"})")),
      "ValueError('kaboom')");
  EXPECT_EQ(ExceptionRepr(json::parse(R"({"exc_type": "KeyError", "exc_message": ["a", 1]})")), "KeyError('a', 1)");
  EXPECT_EQ(ExceptionRepr(json::parse(R"({"exc_type": "Terminated", "exc_message": []})")), "Terminated()");
  EXPECT_EQ(ExceptionRepr(json::parse(R"({"value": 3})")), "");
  EXPECT_EQ(ExceptionRepr(json(3)), "");
}

// ------------------------------------------------------------------ Flower's request body

constexpr double kNow = 1795655188.0;  // 2026-11-26T...

TEST(TaskSubmissionTest, ParsesFlowerBodies) {
  auto spec =
      ParseTaskSubmission(R"({"args": [1, 2], "kwargs": {"x": 1}, "queue": "q1", "priority": 3})", "app.add", kNow);
  ASSERT_TRUE(spec) << spec.error();
  EXPECT_EQ(spec->name, "app.add");
  EXPECT_EQ(spec->args, json::array({1, 2}));
  EXPECT_EQ(spec->kwargs, (json{{"x", 1}}));
  EXPECT_EQ(spec->queue, "q1");
  EXPECT_EQ(spec->priority, 3);
  EXPECT_TRUE(spec->eta.empty());

  auto empty = ParseTaskSubmission("", "app.add", kNow);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->args, json::array());
  EXPECT_EQ(empty->queue, "celery");
}

TEST(TaskSubmissionTest, CountdownEtaAndExpires) {
  auto c = ParseTaskSubmission(R"({"countdown": 10})", "t", 1000.25);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->eta, "1970-01-01T00:16:50.250000+00:00");
  auto e = ParseTaskSubmission(R"({"eta": "2026-11-26 01:11:25.554841"})", "t", kNow);  // Flower's format
  ASSERT_TRUE(e) << e.error();
  EXPECT_EQ(e->eta, "2026-11-26T01:11:25.554841+00:00");
  auto iso = ParseTaskSubmission(R"({"eta": "2026-11-26T02:11:25+01:00"})", "t", kNow);
  ASSERT_TRUE(iso) << iso.error();
  EXPECT_EQ(iso->eta, "2026-11-26T01:11:25.000000+00:00");
  auto x = ParseTaskSubmission(R"({"expires": 60})", "t", 1000);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->expires, "1970-01-01T00:17:40.000000+00:00");
  EXPECT_EQ(x->expires_in_seconds, 60.0);
  auto xs = ParseTaskSubmission(R"({"expires": "60.5"})", "t", 1000);  // Flower: float(expires) first
  ASSERT_TRUE(xs);
  EXPECT_EQ(xs->expires_in_seconds, 60.5);
  auto nested = ParseTaskSubmission(R"({"options": {"queue": "inner", "countdown": 1}, "queue": "outer"})", "t", kNow);
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->queue, "outer");
  EXPECT_FALSE(nested->eta.empty());
}

TEST(TaskSubmissionTest, RejectsBadInput) {
  for (const char* body : {"{", "[1, 2]", R"({"args": {"a": 1}})", R"({"args": "1, 2"})", R"({"kwargs": [1]})",
                           R"({"countdown": "soon"})", R"({"eta": "tomorrow"})", R"({"eta": "2026-13-01 00:00:00"})",
                           R"({"priority": 256})", R"({"priority": "high"})", R"({"queue": ""})", R"({"task_id": 5})",
                           R"({"time_limit": -1})", R"({"ignore_result": "yes"})"}) {
    EXPECT_FALSE(ParseTaskSubmission(body, "t", kNow)) << body;
  }
  auto malformed = ParseTaskSubmission("{\"args\": [1,", "t", kNow);
  ASSERT_FALSE(malformed);
  EXPECT_NE(malformed.error().find("malformed JSON"), std::string::npos);
  EXPECT_EQ(ParseTaskSubmission(R"({"args": 3})", "t", kNow).error(), "args must be an array");
}

// ------------------------------------------------------------------ result backend meta

TEST(ResultMetaTest, ParsesCeleryMeta) {
  auto ok = ParseResultMeta(R"({"status": "SUCCESS", "result": 5, "traceback": null, "children": [],
                                "date_done": "2026-11-26T01:11:25.554841", "task_id": "x"})");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->state, "SUCCESS");
  EXPECT_EQ(ok->result, 5);
  EXPECT_FALSE(ParseResultMeta("\x80\x04pickle"));

  TaskResultMeta failed;
  failed.state = "FAILURE";
  failed.result = json::parse(R"({"exc_type": "ValueError", "exc_message": ["kaboom"], "exc_module": "builtins"})");
  failed.traceback = "Traceback ...";
  json resp;
  AddResultFields(failed, resp);
  EXPECT_EQ(resp["result"], "ValueError('kaboom')");
  EXPECT_EQ(resp["traceback"], "Traceback ...");

  TaskResultMeta success;
  success.state = "SUCCESS";
  success.result = json::parse(R"({"exc_type": "not an exception, a result"})");
  json resp2;
  AddResultFields(success, resp2);
  EXPECT_EQ(resp2["result"], success.result);  // a SUCCESS result is returned as stored
  EXPECT_FALSE(resp2.contains("traceback"));
}

// ------------------------------------------------------------------ inspect cache

TEST(InspectCacheTest, KeepsFlowerFieldsAndLearnsQueuesAndTasks) {
  InspectCache cache;
  EXPECT_EQ(cache.IsRegistered("app.add"), std::nullopt);
  cache.Update("registered", {{"w1@lab", json::array({"app.add [rate_limit=10/m]", "app.sleep"})}}, 100);
  cache.Update("active_queues", {{"w1@lab", json::parse(R"([{"name": "celery"}, {"name": "q2"}])")}}, 101);
  cache.Update("stats", {{"w1@lab", {{"error", "boom"}}}, {"w2@lab", {{"pid", 7}}}}, 102);
  EXPECT_EQ(cache.IsRegistered("app.add"), true);
  EXPECT_EQ(cache.IsRegistered("app.sleep"), true);
  EXPECT_EQ(cache.IsRegistered("app.nope"), false);
  EXPECT_EQ(cache.QueueNames(), (std::vector<std::string>{"celery", "q2"}));
  EXPECT_TRUE(cache.Knows("w2@lab"));

  auto w1 = cache.SnapshotOf("w1@lab");
  ASSERT_TRUE(w1);
  std::vector<std::string> keys;
  for (auto& [k, v] : *w1)
    keys.push_back(k);
  // Flower's order; the error reply to `stats` was not kept.
  EXPECT_EQ(keys, (std::vector<std::string>{"active_queues", "registered", "timestamp"}));
  EXPECT_EQ(json::parse(w1->back().second).get<double>(), 101.0);
}

// ------------------------------------------------------------------ ControlService (in-memory transport)

class FakeTransport : public ControlTransport {
 public:
  // Replies by method; a worker answers only when it is in the destination (or there is none).
  std::map<std::string, std::vector<ControlReply>> replies;
  std::vector<ControlRequest> sent;
  std::vector<std::pair<std::string, KombuMessage>> tasks, events;
  bool down = false;

  Result<std::vector<std::vector<ControlReply>>> BroadcastMany(const std::vector<ControlRequest>& requests,
                                                               const CollectOptions&) override {
    if (down)
      return Error{"connection refused"};
    std::vector<std::vector<ControlReply>> out;
    for (const auto& r : requests) {
      sent.push_back(r);
      std::vector<ControlReply> got;
      if (r.reply) {
        for (const auto& rep : replies[r.method]) {
          if (r.destination.empty() ||
              std::find(r.destination.begin(), r.destination.end(), rep.hostname) != r.destination.end()) {
            got.push_back(rep);
          }
        }
      }
      out.push_back(std::move(got));
    }
    return out;
  }
  Result<bool> PublishTask(const std::string& queue, int, const KombuMessage& m) override {
    if (down)
      return Error{"connection refused"};
    tasks.emplace_back(queue, m);
    return true;
  }
  Result<bool> PublishEvent(const std::string& rk, const KombuMessage& m) override {
    events.emplace_back(rk, m);
    return true;
  }
};

class FakeBackend : public ResultBackend {
 public:
  std::map<std::string, TaskResultMeta> metas;
  std::vector<std::string> aborted;
  Result<TaskResultMeta> Get(const std::string& id) override {
    auto it = metas.find(id);
    return it == metas.end() ? TaskResultMeta{} : it->second;
  }
  Result<bool> MarkAborted(const std::string& id) override {
    aborted.push_back(id);
    return true;
  }
};

class ControlServiceTest : public ::testing::Test {
 protected:
  ControlServiceTest() : state_(StateOptions{}) {
    ControlServiceOptions o;
    o.inspect_timeout_ms = 50;
    o.result_poll_ms = 1;
    service_ = std::make_unique<ControlService>(transport_, &backend_, cache_, state_, o, [] { return 1000.0; });
  }
  FakeTransport transport_;
  FakeBackend backend_;
  InspectCache cache_;
  SharedState state_;
  std::unique_ptr<ControlService> service_;
};

TEST_F(ControlServiceTest, PoolGrowOnAWorkerThatAnswers) {
  transport_.replies["ping"] = {{"w1@lab", {{"ok", "pong"}}}};
  transport_.replies["pool_grow"] = {{"w1@lab", {{"ok", "pool will grow"}}}};
  ControlOutcome o = service_->PoolGrow("w1@lab", 2);
  EXPECT_EQ(o.status, ControlStatus::kOk);
  EXPECT_EQ(o.body, (json{{"message", "Growing 'w1@lab' worker's pool by 2"}}));
  const ControlRequest& grow = transport_.sent.back();
  EXPECT_EQ(grow.method, "pool_grow");
  EXPECT_EQ(grow.arguments, (json{{"n", 2}}));
  EXPECT_EQ(grow.destination, std::vector<std::string>{"w1@lab"});
  EXPECT_TRUE(grow.reply);
}

TEST_F(ControlServiceTest, UnknownWorkerIsNotFound) {
  ControlOutcome o = service_->PoolShrink("ghost@lab", 1);
  EXPECT_EQ(o.status, ControlStatus::kNotFound);
  EXPECT_EQ(o.body["error"], "Unknown worker 'ghost@lab'");
  EXPECT_EQ(transport_.sent.back().method, "ping");  // asked before giving up; nothing else sent
}

TEST_F(ControlServiceTest, WorkerErrorsAreFailuresAndSilenceIsNoReply) {
  cache_.Update("stats", {{"w1@lab", {{"pid", 1}}}}, 1);  // known from the inspect cache
  transport_.replies["autoscale"] = {{"w1@lab", {{"error", "ValueError('Autoscale not enabled')"}}}};
  ControlOutcome failed = service_->Autoscale("w1@lab", 1, 3);
  EXPECT_EQ(failed.status, ControlStatus::kFailed);
  EXPECT_EQ(failed.body["error"], "Failed to autoscale 'w1@lab' worker: ValueError('Autoscale not enabled')");

  ControlOutcome silent = service_->AddConsumer("w1@lab", "q2");
  EXPECT_EQ(silent.status, ControlStatus::kNoReply);

  transport_.down = true;
  EXPECT_EQ(service_->CancelConsumer("w1@lab", "q2").status, ControlStatus::kUnavailable);
}

TEST_F(ControlServiceTest, RevokeBroadcastsWithoutWaiting) {
  ControlOutcome o = service_->Revoke("abc", true, "SIGKILL");
  EXPECT_EQ(o.status, ControlStatus::kOk);
  EXPECT_EQ(o.body["message"], "Revoked 'abc'");
  EXPECT_FALSE(transport_.sent.back().reply);
  EXPECT_TRUE(transport_.sent.back().destination.empty());
  EXPECT_EQ(transport_.sent.back().arguments, (json{{"task_id", "abc"}, {"terminate", true}, {"signal", "SIGKILL"}}));
  EXPECT_EQ(service_->Revoke("abc", false, "kill -9").status, ControlStatus::kBadRequest);
}

TEST_F(ControlServiceTest, TaskNamesAreCheckedAgainstRegisteredLists) {
  transport_.replies["registered"] = {{"w1@lab", json::array({"app.add"})}};
  TaskSpec unknown;
  unknown.name = "app.nope";
  EXPECT_EQ(service_->SendTask(unknown, true, "async_apply").status, ControlStatus::kNotFound);
  EXPECT_TRUE(transport_.tasks.empty());
  // send-task does not check (Flower: "doesn't require task sources").
  EXPECT_EQ(service_->SendTask(unknown, false, "send_task").status, ControlStatus::kOk);

  TaskSpec add;
  add.name = "app.add";
  add.args = json::array({1, 2});
  ControlOutcome o = service_->SendTask(add, true, "async_apply");
  ASSERT_EQ(o.status, ControlStatus::kOk);
  EXPECT_EQ(o.body["state"], "PENDING");
  const std::string id = o.body["task-id"];
  EXPECT_EQ(id.size(), 36u);
  ASSERT_EQ(transport_.tasks.size(), 2u);
  EXPECT_EQ(transport_.tasks.back().second.headers["id"], id);
  ASSERT_EQ(transport_.events.size(), 2u);
  EXPECT_EQ(transport_.events.back().first, "task.sent");
}

TEST_F(ControlServiceTest, WithoutRegisteredListsAnyNameIsAccepted) {
  TaskSpec t;
  t.name = "anything";
  EXPECT_EQ(service_->SendTask(t, true, "async_apply").status, ControlStatus::kOk);
}

TEST_F(ControlServiceTest, ApplyWaitsForTheResultAndTimesOut) {
  TaskSpec t;
  t.name = "app.add";
  ControlOutcome slow = service_->ApplyTask(t, 0.05);
  EXPECT_EQ(slow.status, ControlStatus::kNoReply);
  EXPECT_EQ(slow.body["state"], "PENDING");

  TaskSpec done;
  done.name = "app.add";
  done.id = "fixed-id";
  TaskResultMeta meta;
  meta.found = true;
  meta.state = "SUCCESS";
  meta.result = 3;
  backend_.metas["fixed-id"] = meta;
  ControlOutcome ok = service_->ApplyTask(done, 1);
  EXPECT_EQ(ok.status, ControlStatus::kOk);
  EXPECT_EQ(ok.body, (json{{"task-id", "fixed-id"}, {"state", "SUCCESS"}, {"result", 3}}));

  EXPECT_EQ(service_->TaskResult("fixed-id", 0).body["result"], 3);
  EXPECT_EQ(service_->TaskResult("other", 0).body, (json{{"task-id", "other"}, {"state", "PENDING"}}));
  EXPECT_EQ(service_->AbortTask("other").body["message"], "Aborted 'other'");
  EXPECT_EQ(backend_.aborted, std::vector<std::string>{"other"});
}

TEST_F(ControlServiceTest, RefreshFillsTheCacheWithEveryFlowerMethod) {
  for (const auto& m : CachedInspectMethods()) {
    transport_.replies[m.name] = {{"w1@lab", json::array()}};
  }
  transport_.replies["stats"] = {{"w1@lab", {{"pool", {{"max-concurrency", 2}}}}}};
  auto answered = service_->RefreshWorkers("");
  ASSERT_TRUE(answered);
  EXPECT_EQ(*answered, std::vector<std::string>{"w1@lab"});
  auto fields = cache_.SnapshotOf("w1@lab");
  ASSERT_TRUE(fields);
  EXPECT_EQ(fields->size(), CachedInspectMethods().size() + 1);  // + timestamp
  // registered was asked with Celery's (empty) taskinfoitems, active_queues with no arguments.
  for (const auto& r : transport_.sent) {
    if (r.method == "registered") {
      EXPECT_EQ(r.arguments, (json{{"taskinfoitems", json::array()}}));
    }
    if (r.method == "active_queues") {
      EXPECT_EQ(r.arguments, json::object());
    }
  }
}

// A transport whose broadcasts wait until released: a blocking call in flight.
class StallingTransport : public FakeTransport {
 public:
  Result<std::vector<std::vector<ControlReply>>> BroadcastMany(const std::vector<ControlRequest>& requests,
                                                               const CollectOptions& options) override {
    {
      std::unique_lock lock(mu);
      ++waiting;
      cv.notify_all();
      cv.wait(lock, [&] { return released; });
    }
    return FakeTransport::BroadcastMany(requests, options);
  }
  std::mutex mu;
  std::condition_variable cv;
  int waiting = 0;
  bool released = false;
};

TEST(ControlGateTest, BlockingCallsBeyondTheLimitAreTurnedAwayAtOnce) {
  StallingTransport transport;
  transport.replies["pool_grow"] = {{"w1@lab", {{"ok", "pool will grow"}}}};
  InspectCache cache;
  cache.Update("stats", {{"w1@lab", {{"pid", 1}}}}, 1);
  SharedState state{StateOptions{}};
  ControlServiceOptions o;
  o.max_blocking_calls = 1;
  ControlService service(transport, nullptr, cache, state, o, [] { return 1.0; });

  ControlOutcome first;
  std::thread t([&] { first = service.PoolGrow("w1@lab", 1); });
  {
    std::unique_lock lock(transport.mu);
    transport.cv.wait(lock, [&] { return transport.waiting == 1; });
  }
  // The only blocking slot is taken: a second waiting call is refused, a non-waiting one still runs.
  EXPECT_EQ(service.PoolShrink("w1@lab", 1).status, ControlStatus::kBusy);
  EXPECT_EQ(service.RefreshWorkersGated("").status, ControlStatus::kBusy);
  EXPECT_EQ(service.TaskResult("x", 0).status, ControlStatus::kUnavailable);  // no backend: answered at once
  {
    std::lock_guard lock(transport.mu);
    transport.released = true;
  }
  transport.cv.notify_all();
  t.join();
  EXPECT_EQ(first.status, ControlStatus::kOk);
  EXPECT_EQ(service.PoolShrink("w1@lab", 1).status, ControlStatus::kNoReply);  // the slot is free again
}

}  // namespace
}  // namespace stalk
