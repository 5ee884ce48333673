// Stalk — Celery monitoring server.
// Unit tests of protocol/EventDecoder on payloads shaped exactly like the captured ones in
// celery-protocol.md (§1.3 envelope, §2.1 heartbeat sample, §2.3 event table and task.multi lists),
// on every RejectReason, and on a bounded random-mutation fuzz loop (no crash, counts consistent).
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/base64.h"
#include "common/json_writer.h"
#include "protocol/event.h"
#include "protocol/event_decoder.h"
#include "protocol/reject_reason.h"

namespace stalk {

// gtest prints enum values by name with this (found by ADL, so it lives in namespace stalk).
static void PrintTo(RejectReason r, std::ostream* os) { *os << RejectReasonName(r); }

namespace {

using namespace std::string_literals;
using namespace std::string_view_literals;

// ------------------------------------------------------------------ helpers

std::string ReadData(const std::string& name) {
  std::ifstream in(std::string(STALK_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing test data file " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

std::string Quote(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

struct EnvelopeOptions {
  std::string routing_key = "task.multi";
  std::string hostname = "w1@lab";
  std::string content_type = "application/json";
  std::optional<std::string> body_encoding = "base64";  // nullopt: key left out
};

// A Redis PUB/SUB payload as kombu writes it (§1.3, §2.1 sample): same keys, same order, Python's
// ", " / ": " separators. The body is base64 of `body_text` when body_encoding is "base64", else the
// text itself.
std::string KombuEnvelope(std::string_view body_text, const EnvelopeOptions& o = {}) {
  const bool b64 = o.body_encoding && *o.body_encoding == "base64";
  const std::string body = b64 ? Base64Encode(body_text) : std::string(body_text);
  std::string props = R"J({"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": )J" +
                      Quote(o.routing_key) + R"J(}, "priority": 0, )J";
  if (o.body_encoding) {
    props += R"J("body_encoding": )J" + Quote(*o.body_encoding) + ", ";
  }
  props += R"J("delivery_tag": "b2ca68c8-bdca-4ca5-ae77-f0e35592f7f1"})J";
  return R"J({"body": )J" + Quote(body) + R"J(, "content-encoding": "utf-8", "content-type": )J" +
         Quote(o.content_type) + R"J(, "headers": {"hostname": )J" + Quote(o.hostname) + R"J(}, "properties": )J" +
         props + "}";
}

EnvelopeOptions Routing(std::string rk) {
  EnvelopeOptions o;
  o.routing_key = std::move(rk);
  return o;
}

// Bodies as the lab capture shows them (Python json.dumps of the event dict).
constexpr std::string_view kHeartbeatBody =
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 2, "freq": 2.0, "active": 0, )J"
    R"J("processed": 0, "loadavg": [0.53, 0.38, 0.18], "sw_ident": "py-celery", "sw_ver": "5.2.6", )J"
    R"J("sw_sys": "Linux", "timestamp": 1795655136.91077, "type": "worker-heartbeat"})J";

constexpr std::string_view kTaskMultiBody =
    R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 11, )J"
    R"J("uuid": "53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11", "exception": "NotRegistered('nonexistent.task')", )J"
    R"J("timestamp": 1795655140.123456, "type": "task-failed"}, )J"
    R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 12, )J"
    R"J("uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "timestamp": 1795655140.2345, "type": "task-started"}])J";

constexpr std::string_view kTaskSentBody =
    R"J({"hostname": "gen8470@vm", "utcoffset": 0, "pid": 8470, "clock": 1, )J"
    R"J("uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "root_id": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
    R"J("parent_id": null, "name": "tasks.add", "args": "(2, 3)", "kwargs": "{}", "retries": 0, "eta": null, )J"
    R"J("expires": null, "queue": "celery", "exchange": "", "routing_key": "celery", )J"
    R"J("timestamp": 1795655139.5, "type": "task-sent"})J";

constexpr std::string_view kTaskSucceededBody =
    R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 13, )J"
    R"J("uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "result": "5", "runtime": 0.0021349079906940460, )J"
    R"J("timestamp": 1795655140.3, "type": "task-succeeded"}])J";

// ------------------------------------------------------------------ fixture

struct Reject {
  RejectReason reason;
  std::string detail;
};

class DecoderTest : public ::testing::Test {
 protected:
  auto Sink() {  // returns the lambda itself: EventDecoder::Sink is a non-owning FunctionRef
    return [this](const Event& e) { events_.push_back(e); };
  }
  auto OnReject() {
    return [this](RejectReason r, std::string_view d) { rejects_.push_back({r, std::string(d)}); };
  }
  // Events keep views into the decoder's buffers: valid until the next Decode* call (event.h).
  size_t Decode(std::string_view envelope) { return Decode(dec_, envelope); }
  size_t Decode(EventDecoder& dec, std::string_view envelope) {
    events_.clear();
    rejects_.clear();
    const size_t n = dec.DecodeKombuEnvelope(envelope, Sink(), OnReject());
    EXPECT_EQ(n, events_.size()) << "return value must equal the number of sink calls";
    return n;
  }
  size_t DecodeAmqp(std::string_view content_type, std::string_view body) {
    events_.clear();
    rejects_.clear();
    const size_t n = dec_.DecodeBody(content_type, body, Sink(), OnReject());
    EXPECT_EQ(n, events_.size());
    return n;
  }
  // Exactly one reject with `reason`, no event.
  void ExpectOnlyReject(RejectReason reason) {
    EXPECT_TRUE(events_.empty());
    ASSERT_EQ(rejects_.size(), 1u);
    EXPECT_EQ(rejects_[0].reason, reason) << "detail: " << rejects_[0].detail;
  }

  EventDecoder dec_;
  std::vector<Event> events_;
  std::vector<Reject> rejects_;
};

void ExpectValue(const OptStr& s, std::string_view want) {
  EXPECT_TRUE(s.present);
  EXPECT_FALSE(s.null);
  EXPECT_TRUE(s.has_value());
  EXPECT_EQ(s.value, want);
}

void ExpectNull(const OptStr& s) {
  EXPECT_TRUE(s.present);
  EXPECT_TRUE(s.null);
  EXPECT_FALSE(s.has_value());
}

void ExpectAbsent(const OptStr& s) {
  EXPECT_FALSE(s.present);
  EXPECT_FALSE(s.has_value());
}

// ------------------------------------------------------------------ good payloads

TEST_F(DecoderTest, CapturedWorkerHeartbeatEnvelopeHasEveryField) {
  const std::string env = ReadData("redis_worker_heartbeat.json");
  ASSERT_EQ(Decode(env), 1u);
  EXPECT_TRUE(rejects_.empty());
  const Event& e = events_[0];
  EXPECT_EQ(e.kind, EventKind::kWorkerHeartbeat);
  EXPECT_EQ(e.type, "worker-heartbeat");
  EXPECT_EQ(e.hostname, "w1@lab");
  EXPECT_EQ(e.utcoffset, 0);
  EXPECT_EQ(e.pid, 8288);
  EXPECT_TRUE(e.has_clock);
  EXPECT_EQ(e.clock, 2);
  EXPECT_TRUE(e.has_timestamp);
  EXPECT_DOUBLE_EQ(e.timestamp, 1795655136.91077);
  ASSERT_TRUE(e.freq.has_value());
  EXPECT_DOUBLE_EQ(*e.freq, 2.0);
  ASSERT_TRUE(e.active.has_value());
  EXPECT_EQ(*e.active, 0);
  ASSERT_TRUE(e.processed.has_value());
  EXPECT_EQ(*e.processed, 0);
  ASSERT_TRUE(e.loadavg.has_value());
  EXPECT_DOUBLE_EQ((*e.loadavg)[0], 0.53);
  EXPECT_DOUBLE_EQ((*e.loadavg)[1], 0.38);
  EXPECT_DOUBLE_EQ((*e.loadavg)[2], 0.18);
  ExpectValue(e.sw_ident, "py-celery");
  ExpectValue(e.sw_ver, "5.2.6");
  ExpectValue(e.sw_sys, "Linux");
  EXPECT_TRUE(e.uuid.empty());
  ExpectAbsent(e.name);
}

TEST_F(DecoderTest, BuiltEnvelopeMatchesCapturedFile) {
  // The helper used by the rest of this file produces byte-for-byte what the capture holds.
  EnvelopeOptions o = Routing("worker.heartbeat");
  EXPECT_EQ(KombuEnvelope(kHeartbeatBody, o), ReadData("redis_worker_heartbeat.json"));
}

TEST_F(DecoderTest, RequestedHeartbeatHasIntFreqAndNoCounters) {
  // Answer to the `heartbeat` control command (§2.3): freq 5 (int), sw_* only.
  const std::string body = R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 8288, "clock": 9, "freq": 5, )J"
                           R"J("sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux", )J"
                           R"J("timestamp": 1795655150.0, "type": "worker-heartbeat"})J";
  ASSERT_EQ(Decode(KombuEnvelope(body, Routing("worker.heartbeat"))), 1u);
  const Event& e = events_[0];
  ASSERT_TRUE(e.freq.has_value());
  EXPECT_DOUBLE_EQ(*e.freq, 5.0);
  EXPECT_FALSE(e.active.has_value());
  EXPECT_FALSE(e.processed.has_value());
  EXPECT_FALSE(e.loadavg.has_value());
}

TEST_F(DecoderTest, WorkerOnlineAndOfflineClassified) {
  for (auto [type, kind] :
       {std::pair{"worker-online", EventKind::kWorkerOnline}, std::pair{"worker-offline", EventKind::kWorkerOffline},
        std::pair{"worker-elect", EventKind::kWorkerCustom}}) {
    const std::string body = std::string(R"J({"hostname": "w1@lab", "utcoffset": 0, "pid": 1, "clock": 1, )J") +
                             R"J("freq": 2.0, "timestamp": 1795655136.0, "type": ")J" + type + R"J("})J";
    ASSERT_EQ(Decode(KombuEnvelope(body, Routing("worker.x"))), 1u) << type;
    EXPECT_EQ(events_[0].kind, kind) << type;
  }
}

TEST_F(DecoderTest, CapturedTaskMultiListDeliversBothInOrder) {
  const std::string env = ReadData("redis_task_multi.json");
  {
    // Same bytes as the helper builds, apart from the delivery_tag.
    std::string same_tag = env;
    const size_t at = same_tag.find("0f6c2b9e-6a1d-4a57-8f0b-3c2d1e0f9a8b");
    ASSERT_NE(at, std::string::npos);
    same_tag.replace(at, 36, "b2ca68c8-bdca-4ca5-ae77-f0e35592f7f1");
    EXPECT_EQ(same_tag, KombuEnvelope(kTaskMultiBody, Routing("task.multi")));
  }
  ASSERT_EQ(Decode(env), 2u);
  EXPECT_TRUE(rejects_.empty());

  // Both events' views are still valid after the second was delivered (one buffer per message).
  const Event& failed = events_[0];
  EXPECT_EQ(failed.kind, EventKind::kTaskFailed);
  EXPECT_EQ(failed.uuid, "53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11");
  EXPECT_EQ(failed.hostname, "w1@lab");
  EXPECT_EQ(failed.pid, 8466);
  EXPECT_EQ(failed.clock, 11);
  ExpectValue(failed.exception, "NotRegistered('nonexistent.task')");
  ExpectAbsent(failed.traceback);  // unknown task name: no traceback at all (§2.3)
  ExpectAbsent(failed.name);
  EXPECT_DOUBLE_EQ(failed.timestamp, 1795655140.123456);

  const Event& started = events_[1];
  EXPECT_EQ(started.kind, EventKind::kTaskStarted);
  EXPECT_EQ(started.uuid, "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a");
  EXPECT_EQ(started.clock, 12);
  ExpectAbsent(started.exception);
}

TEST_F(DecoderTest, TaskSentWithRoutingAndNullEta) {
  ASSERT_EQ(Decode(KombuEnvelope(kTaskSentBody, Routing("task.sent"))), 1u);
  const Event& e = events_[0];
  EXPECT_EQ(e.kind, EventKind::kTaskSent);
  EXPECT_EQ(e.hostname, "gen8470@vm");
  EXPECT_EQ(e.uuid, "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a");
  ExpectValue(e.name, "tasks.add");
  ExpectValue(e.args, "(2, 3)");
  ExpectValue(e.kwargs, "{}");
  ExpectValue(e.root_id, "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a");
  ExpectNull(e.parent_id);
  ExpectNull(e.eta);
  ExpectNull(e.expires);
  ExpectValue(e.queue, "celery");
  ExpectValue(e.exchange, "");  // the default exchange: present, empty, not null
  ExpectValue(e.routing_key, "celery");
  ASSERT_TRUE(e.retries.has_value());
  EXPECT_EQ(*e.retries, 0);
}

TEST_F(DecoderTest, TaskReceivedWithIsoEtaAndEmptyRepr) {
  // A message without argsrepr/kwargsrepr gives "" (§2.3 [V]); eta/expires are ISO strings.
  const std::string body =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 5, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("name": "tasks.add", "args": "", "kwargs": "", "root_id": null, "parent_id": null, "retries": 2, )J"
      R"J("eta": "2026-11-26T01:11:25.554841+00:00", "expires": "2026-11-26T02:00:00+00:00", )J"
      R"J("timestamp": 1795655140.0, "type": "task-received"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(body)), 1u);
  const Event& e = events_[0];
  EXPECT_EQ(e.kind, EventKind::kTaskReceived);
  ExpectValue(e.args, "");
  ExpectValue(e.kwargs, "");
  ExpectNull(e.root_id);
  ExpectValue(e.eta, "2026-11-26T01:11:25.554841+00:00");
  ExpectValue(e.expires, "2026-11-26T02:00:00+00:00");
  EXPECT_EQ(e.retries.value_or(-1), 2);
}

TEST_F(DecoderTest, TaskSucceededWithResultReprAndRuntime) {
  ASSERT_EQ(Decode(KombuEnvelope(kTaskSucceededBody)), 1u);
  const Event& e = events_[0];
  EXPECT_EQ(e.kind, EventKind::kTaskSucceeded);
  ExpectValue(e.result, "5");
  ASSERT_TRUE(e.runtime.has_value());
  EXPECT_DOUBLE_EQ(*e.runtime, 0.0021349079906940460);
}

TEST_F(DecoderTest, TaskFailedWithTraceback) {
  const std::string body =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 14, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("exception": "ValueError('kaboom')", "traceback": "Traceback (most recent call last):\n  File \"x.py\"\nValueError: kaboom\n", )J"
      R"J("timestamp": 1795655140.4, "type": "task-failed"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(body)), 1u);
  ExpectValue(events_[0].exception, "ValueError('kaboom')");
  ExpectValue(events_[0].traceback, "Traceback (most recent call last):\n  File \"x.py\"\nValueError: kaboom\n");
}

TEST_F(DecoderTest, TaskRejectedCarriesRequeue) {
  const std::string body =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 15, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("requeue": true, "timestamp": 1795655140.5, "type": "task-rejected"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(body)), 1u);
  EXPECT_EQ(events_[0].kind, EventKind::kTaskRejected);
  ASSERT_TRUE(events_[0].requeue.has_value());
  EXPECT_TRUE(*events_[0].requeue);

  // The docs' spelling `requeued` (§2.3: the code sends `requeue`) is accepted too.
  const std::string docs_spelling =
      R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "requeued": false, )J"
      R"J("timestamp": 1795655140.5, "type": "task-rejected"})J";
  ASSERT_EQ(Decode(KombuEnvelope(docs_spelling)), 1u);
  ASSERT_TRUE(events_[0].requeue.has_value());
  EXPECT_FALSE(*events_[0].requeue);
}

TEST_F(DecoderTest, TaskRevokedTerminatedSignumExpired) {
  const std::string killed =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 16, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("terminated": true, "signum": 9, "expired": false, "timestamp": 1795655140.6, "type": "task-revoked"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(killed)), 1u);
  const Event& e = events_[0];
  EXPECT_EQ(e.kind, EventKind::kTaskRevoked);
  EXPECT_EQ(e.terminated, std::optional<bool>(true));
  EXPECT_EQ(e.expired, std::optional<bool>(false));
  ExpectValue(e.signum, "9");  // a number is kept as its JSON text

  const std::string expired =
      R"J([{"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "terminated": false, )J"
      R"J("signum": null, "expired": true, "timestamp": 1795655140.7, "type": "task-revoked"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(expired)), 1u);
  EXPECT_EQ(events_[0].terminated, std::optional<bool>(false));
  EXPECT_EQ(events_[0].expired, std::optional<bool>(true));
  ExpectNull(events_[0].signum);

  // The on_failure(Terminated) path sends str(exc) as signum (§2.3 [C]).
  const std::string text_signum =
      R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "terminated": true, )J"
      R"J("signum": "15", "expired": false, "type": "task-revoked"})J";
  ASSERT_EQ(Decode(KombuEnvelope(text_signum)), 1u);
  ExpectValue(events_[0].signum, "15");
  EXPECT_FALSE(events_[0].has_timestamp);
}

TEST_F(DecoderTest, CustomTaskEventAndOtherGroup) {
  // Task.send_event('task-progress', current=5, total=10) adds uuid (§2.3 "custom").
  const std::string body =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 17, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("current": 5, "total": 10, "result": {"pct": 50}, "timestamp": 1795655140.8, "type": "task-progress"}, )J"
      R"J({"hostname": "w1@lab", "deploy": "v2", "timestamp": 1795655140.9, "type": "myapp-deployed"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(body)), 2u);
  EXPECT_EQ(events_[0].kind, EventKind::kTaskCustom);
  EXPECT_EQ(events_[0].type, "task-progress");
  ExpectValue(events_[0].result, R"J({"pct":50})J");  // non-string result kept as JSON text
  EXPECT_EQ(events_[1].kind, EventKind::kOther);
  EXPECT_EQ(events_[1].type, "myapp-deployed");
}

TEST_F(DecoderTest, EmptyListDeliversNothingAndRejectsNothing) {
  // 5.2.6's flush() may publish [] (§2.3 [C]).
  EXPECT_EQ(Decode(KombuEnvelope("[]")), 0u);
  EXPECT_TRUE(rejects_.empty());
}

TEST_F(DecoderTest, BodyWithoutBodyEncodingIsPlainJson) {
  // §1.3: body_encoding may be left out; kombu then passes the body through unchanged.
  EnvelopeOptions o = Routing("task.sent");
  o.body_encoding = std::nullopt;
  const std::string env = KombuEnvelope(kTaskSentBody, o);
  ASSERT_EQ(env.find("body_encoding"), std::string::npos);
  ASSERT_EQ(Decode(env), 1u);
  EXPECT_EQ(events_[0].kind, EventKind::kTaskSent);
  ExpectValue(events_[0].routing_key, "celery");
}

TEST_F(DecoderTest, Utf8BodyEncodingIsNoOp) {
  // kombu >= 5.4 treats body_encoding "utf-8" as a no-op (§1.3). Non-ASCII text survives.
  EnvelopeOptions o;
  o.body_encoding = "utf-8";
  const std::string body =
      "[{\"hostname\": \"w\xC3\xB6rker@lab\", \"uuid\": \"5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a\", "
      "\"result\": \"'caf\xC3\xA9'\", \"timestamp\": 1795655141.0, \"type\": \"task-succeeded\"}]";
  ASSERT_EQ(Decode(KombuEnvelope(body, o)), 1u);
  EXPECT_EQ(events_[0].hostname, "w\xC3\xB6rker@lab");
  ExpectValue(events_[0].result, "'caf\xC3\xA9'");
}

TEST_F(DecoderTest, AsciiEscapedNonAsciiAsKombuDumpsWritesIt) {
  // kombu's dumps escapes non-ASCII (§1.3): \u00e9 must come out as UTF-8.
  const std::string body =
      R"J([{"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "result": "'caf\u00e9 \ud83d\ude00'", )J"
      R"J("timestamp": 1795655141.0, "type": "task-succeeded"}])J";
  ASSERT_EQ(Decode(KombuEnvelope(body)), 1u);
  ExpectValue(events_[0].result, "'caf\xC3\xA9 \xF0\x9F\x98\x80'");
}

TEST_F(DecoderTest, Kombu53TypeMarkersInArgsKeptAsJsonText) {
  // kombu >= 5.3 JSON extension (§1.2): {"__type__", "__value__"} objects, e.g. in args a non-Python
  // or custom producer put as real JSON. They must not crash, and are kept verbatim (minified).
  const std::string body =
      R"J({"hostname": "gen1@vm", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "name": "tasks.when", )J"
      R"J("args": [{"__type__": "datetime", "__value__": "2026-11-26T01:11:25.554841+00:00"}, )J"
      R"J({"__type__": "uuid", "__value__": {"hex": "5484a2c18f0e4d3b9a6c7e1f2d3c4b5a", "version": 4}}], )J"
      R"J("kwargs": {"amount": {"__type__": "decimal", "__value__": "1.50"}, "blob": {"__type__": "bytes", "__value__": "AAE="}}, )J"
      R"J("eta": {"__type__": "datetime", "__value__": "2026-11-26T01:11:25+00:00"}, )J"
      R"J("timestamp": 1795655139.5, "type": "task-sent"})J";
  ASSERT_EQ(Decode(KombuEnvelope(body, Routing("task.sent"))), 1u);
  const Event& e = events_[0];
  ExpectValue(e.args, R"J([{"__type__":"datetime","__value__":"2026-11-26T01:11:25.554841+00:00"},)J"
                      R"J({"__type__":"uuid","__value__":{"hex":"5484a2c18f0e4d3b9a6c7e1f2d3c4b5a","version":4}}])J");
  ExpectValue(
      e.kwargs,
      R"J({"amount":{"__type__":"decimal","__value__":"1.50"},"blob":{"__type__":"bytes","__value__":"AAE="}})J");
  ExpectValue(e.eta, R"J({"__type__":"datetime","__value__":"2026-11-26T01:11:25+00:00"})J");
}

TEST_F(DecoderTest, NumericFieldsAcceptIntOrFloatAndIgnoreWrongTypes) {
  const std::string body =
      R"J({"hostname": "w1@lab", "utcoffset": -1, "pid": "not-a-number", "clock": "7", "freq": 2, )J"
      R"J("active": 3.0, "processed": 18446744073709551615, "loadavg": [1, "x", 0.5, 9], )J"
      R"J("timestamp": 1795655136, "type": "worker-heartbeat"})J";
  ASSERT_EQ(Decode(KombuEnvelope(body, Routing("worker.heartbeat"))), 1u);
  const Event& e = events_[0];
  EXPECT_DOUBLE_EQ(e.utcoffset, -1);
  EXPECT_EQ(e.pid, 0);
  EXPECT_FALSE(e.has_clock);
  EXPECT_DOUBLE_EQ(e.freq.value_or(0), 2.0);
  EXPECT_EQ(e.active.value_or(-1), 3);
  EXPECT_EQ(e.processed.value_or(-1), INT64_MAX);  // uint64 beyond int64 saturates
  ASSERT_TRUE(e.loadavg.has_value());
  EXPECT_DOUBLE_EQ((*e.loadavg)[0], 1.0);
  EXPECT_DOUBLE_EQ((*e.loadavg)[1], 0.0);
  EXPECT_DOUBLE_EQ((*e.loadavg)[2], 0.5);
  EXPECT_TRUE(e.has_timestamp);
  EXPECT_DOUBLE_EQ(e.timestamp, 1795655136.0);
}

TEST_F(DecoderTest, DecoderIsReusableAfterRejectsAndBigMessages) {
  EXPECT_EQ(Decode("garbage"), 0u);
  std::string big = R"J([)J";
  for (int i = 0; i < 500; ++i) {
    big += std::string(i ? ", " : "") +
           R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "result": ")J" +
           std::string(200, 'r') + R"J(", "type": "task-succeeded"})J";
  }
  big += "]";
  EXPECT_EQ(Decode(KombuEnvelope(big)), 500u);
  ASSERT_EQ(Decode(ReadData("redis_worker_heartbeat.json")), 1u);
  EXPECT_EQ(events_[0].hostname, "w1@lab");
  ExpectValue(events_[0].sw_ver, "5.2.6");
}

// ------------------------------------------------------------------ bad input

TEST_F(DecoderTest, NotJson) {
  EXPECT_EQ(Decode("this is not json"), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  EXPECT_EQ(Decode(""), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  EXPECT_EQ(Decode(R"J({"body": "eyJ9")J"), 0u);  // truncated
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
}

TEST_F(DecoderTest, JsonArrayAsEnvelope) {
  EXPECT_EQ(Decode(R"J([{"body": "e30=", "content-type": "application/json"}])J"), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  EXPECT_EQ(Decode(R"J("just a string")J"), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
}

TEST_F(DecoderTest, MissingBody) {
  EXPECT_EQ(Decode(R"J({"content-encoding": "utf-8", "content-type": "application/json", "headers": {}, )J"
                   R"J("properties": {"body_encoding": "base64"}})J"),
            0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
}

TEST_F(DecoderTest, BodyNotAString) {
  EXPECT_EQ(
      Decode(R"J({"body": {"type": "worker-heartbeat", "hostname": "w1@lab"}, "content-type": "application/json"})J"),
      0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  EXPECT_EQ(Decode(R"J({"body": null, "content-type": "application/json"})J"), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
}

TEST_F(DecoderTest, BadBase64) {
  std::string env = KombuEnvelope(kHeartbeatBody, Routing("worker.heartbeat"));
  const size_t at = env.find("eyJ");
  ASSERT_NE(at, std::string::npos);
  env.replace(at, 3, "e*J");
  EXPECT_EQ(Decode(env), 0u);
  ExpectOnlyReject(RejectReason::kBadBodyEncoding);

  EXPECT_EQ(Decode(R"J({"body": "abcde", "properties": {"body_encoding": "base64"}})J"), 0u);  // len % 4 == 1
  ExpectOnlyReject(RejectReason::kBadBodyEncoding);
}

TEST_F(DecoderTest, PickleAndMsgpackAreUnsupportedSerializers) {
  EnvelopeOptions pickle;
  pickle.content_type = "application/x-python-serialize";
  EXPECT_EQ(Decode(KombuEnvelope("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."s, pickle)), 0u);
  ExpectOnlyReject(RejectReason::kUnsupportedSerializer);
  EXPECT_EQ(rejects_[0].detail, "application/x-python-serialize");

  EnvelopeOptions msgpack;
  msgpack.content_type = "application/x-msgpack";
  EXPECT_EQ(Decode(KombuEnvelope("\x81\xa4type\xb0worker-heartbeat"s, msgpack)), 0u);
  ExpectOnlyReject(RejectReason::kUnsupportedSerializer);
  EXPECT_EQ(rejects_[0].detail, "application/x-msgpack");

  // Even a JSON-looking body is refused when the declared serializer is not JSON.
  EnvelopeOptions yaml;
  yaml.content_type = "application/x-yaml";
  EXPECT_EQ(Decode(KombuEnvelope(kHeartbeatBody, yaml)), 0u);
  ExpectOnlyReject(RejectReason::kUnsupportedSerializer);
}

TEST_F(DecoderTest, UnknownBodyEncoding) {
  EnvelopeOptions o;
  o.body_encoding = "gzip";
  EXPECT_EQ(Decode(KombuEnvelope("H4sIAAAAAAAA", o)), 0u);
  ExpectOnlyReject(RejectReason::kBadBodyEncoding);
  EXPECT_EQ(rejects_[0].detail, "gzip");
}

TEST_F(DecoderTest, MalformedJsonBody) {
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"type": "worker-heartbeat", "hostname": )J")), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
  EXPECT_EQ(Decode(KombuEnvelope("")), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
  EXPECT_EQ(Decode(KombuEnvelope("\xff\xfe{\"type\": 1}"s)), 0u);  // not UTF-8
  ExpectOnlyReject(RejectReason::kMalformedBody);
}

TEST_F(DecoderTest, ListWithOneGoodAndOneNonObject) {
  const std::string body =
      R"J([{"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "timestamp": 1795655140.2, "type": "task-started"}, 42])J";
  EXPECT_EQ(Decode(KombuEnvelope(body)), 1u);
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].kind, EventKind::kTaskStarted);
  EXPECT_EQ(events_[0].uuid, "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a");
  ASSERT_EQ(rejects_.size(), 1u);
  EXPECT_EQ(rejects_[0].reason, RejectReason::kNotAnEvent);

  // Bad elements first, good one last: still delivered; one reject per bad element.
  const std::string mixed =
      R"J([null, "task-started", [1], {"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "type": "task-started"}])J";
  EXPECT_EQ(Decode(KombuEnvelope(mixed)), 1u);
  ASSERT_EQ(rejects_.size(), 3u);
  for (const Reject& r : rejects_) {
    EXPECT_EQ(r.reason, RejectReason::kNotAnEvent);
  }
}

TEST_F(DecoderTest, ScalarBodiesAreNotEvents) {
  for (std::string_view body : {"42", "null", R"J("task-started")J", "true"}) {
    EXPECT_EQ(Decode(KombuEnvelope(body)), 0u) << body;
    ExpectOnlyReject(RejectReason::kNotAnEvent);
  }
}

TEST_F(DecoderTest, EventWithoutType) {
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a"})J")), 0u);
  ExpectOnlyReject(RejectReason::kNotAnEvent);
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"hostname": "w1@lab", "type": 5})J")), 0u);
  ExpectOnlyReject(RejectReason::kNotAnEvent);
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"hostname": "w1@lab", "type": ""})J")), 0u);
  ExpectOnlyReject(RejectReason::kNotAnEvent);
}

TEST_F(DecoderTest, TaskEventWithoutUuid) {
  EXPECT_EQ(Decode(KombuEnvelope(R"J([{"hostname": "w1@lab", "result": "5", "type": "task-succeeded"}])J")), 0u);
  ExpectOnlyReject(RejectReason::kMissingField);
  EXPECT_EQ(rejects_[0].detail, "task-succeeded");
  EXPECT_EQ(Decode(KombuEnvelope(R"J([{"hostname": "w1@lab", "uuid": 12, "type": "task-started"}])J")), 0u);
  ExpectOnlyReject(RejectReason::kMissingField);
  EXPECT_EQ(Decode(KombuEnvelope(R"J([{"hostname": "w1@lab", "uuid": "", "type": "task-progress"}])J")), 0u);
  ExpectOnlyReject(RejectReason::kMissingField);
}

TEST_F(DecoderTest, WorkerEventWithoutHostname) {
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"freq": 2.0, "timestamp": 1795655136.0, "type": "worker-heartbeat"})J")), 0u);
  ExpectOnlyReject(RejectReason::kMissingField);
  EXPECT_EQ(Decode(KombuEnvelope(R"J({"hostname": null, "type": "worker-offline"})J")), 0u);
  ExpectOnlyReject(RejectReason::kMissingField);
}

TEST_F(DecoderTest, Oversized) {
  EventDecoder small(256);
  const std::string env = KombuEnvelope(kHeartbeatBody, Routing("worker.heartbeat"));
  ASSERT_GT(env.size(), 256u);
  EXPECT_EQ(Decode(small, env), 0u);
  ExpectOnlyReject(RejectReason::kOversized);

  // Exactly at the limit is accepted.
  EventDecoder exact(env.size());
  EXPECT_EQ(Decode(exact, env), 1u);

  // The AMQP path enforces the same limit.
  events_.clear();
  rejects_.clear();
  EXPECT_EQ(small.DecodeBody("application/json", std::string(300, ' ') + "{}", Sink(), OnReject()), 0u);
  ExpectOnlyReject(RejectReason::kOversized);
}

TEST_F(DecoderTest, DeeplyNestedEnvelopeIsAnErrorNotACrash) {
  EXPECT_EQ(Decode(std::string(100000, '[')), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  EXPECT_EQ(Decode(std::string(100000, '[') + std::string(100000, ']')), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
  std::string objs;
  for (int i = 0; i < 50000; ++i) {
    objs += R"J({"a":)J";
  }
  EXPECT_EQ(Decode(objs), 0u);
  ExpectOnlyReject(RejectReason::kMalformedEnvelope);
}

TEST_F(DecoderTest, DeeplyNestedBodyIsAnErrorNotACrash) {
  EXPECT_EQ(Decode(KombuEnvelope(std::string(100000, '['))), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
  EXPECT_EQ(Decode(KombuEnvelope(std::string(100000, '[') + std::string(100000, ']'))), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);

  // Too deep inside a field of an otherwise good event.
  const std::string deep = R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "result": )J" +
                           std::string(5000, '[') + std::string(5000, ']') + R"J(, "type": "task-succeeded"})J";
  EXPECT_EQ(Decode(KombuEnvelope(deep)), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);

  // Within the parser's depth limit a nested value is kept as JSON text.
  const std::string ok = R"J({"hostname": "w1@lab", "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "result": )J" +
                         std::string(500, '[') + std::string(500, ']') + R"J(, "type": "task-succeeded"})J";
  ASSERT_EQ(Decode(KombuEnvelope(ok)), 1u);
  ExpectValue(events_[0].result, std::string(500, '[') + std::string(500, ']'));
}

// ------------------------------------------------------------------ AMQP path (DecodeBody)

TEST_F(DecoderTest, AmqpRawObjectBody) {
  ASSERT_EQ(DecodeAmqp("application/json", kHeartbeatBody), 1u);
  EXPECT_EQ(events_[0].kind, EventKind::kWorkerHeartbeat);
  EXPECT_EQ(events_[0].hostname, "w1@lab");
  EXPECT_DOUBLE_EQ(events_[0].freq.value_or(0), 2.0);
}

TEST_F(DecoderTest, AmqpRawListBodyFromFile) {
  ASSERT_EQ(DecodeAmqp("application/json", ReadData("amqp_task_multi_body.json")), 2u);
  EXPECT_TRUE(rejects_.empty());
  EXPECT_EQ(events_[0].kind, EventKind::kTaskReceived);
  ExpectValue(events_[0].name, "tasks.add");
  ExpectValue(events_[0].args, "(2, 3)");
  ExpectNull(events_[0].parent_id);
  EXPECT_EQ(events_[1].kind, EventKind::kTaskSucceeded);
  ExpectValue(events_[1].result, "5");
  EXPECT_DOUBLE_EQ(events_[1].runtime.value_or(0), 0.002134907990694046);
}

TEST_F(DecoderTest, AmqpBodyIsNeverBase64Decoded) {
  // §1.4: no base64 and no envelope on AMQP; a base64 body is just not JSON.
  EXPECT_EQ(DecodeAmqp("application/json", Base64Encode(kHeartbeatBody)), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
}

TEST_F(DecoderTest, AmqpContentTypes) {
  EXPECT_EQ(DecodeAmqp("", kHeartbeatBody), 1u);  // no content_type property: assume JSON
  EXPECT_EQ(DecodeAmqp("application/json; charset=utf-8", kHeartbeatBody), 1u);
  EXPECT_EQ(DecodeAmqp("application/x-python-serialize", "\x80\x04K\x01."), 0u);
  ExpectOnlyReject(RejectReason::kUnsupportedSerializer);
  EXPECT_EQ(DecodeAmqp("application/x-msgpack", "\x81\xa1\x61\x01"), 0u);
  ExpectOnlyReject(RejectReason::kUnsupportedSerializer);
}

TEST_F(DecoderTest, AmqpBadBodies) {
  EXPECT_EQ(DecodeAmqp("application/json", "{not json"), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
  EXPECT_EQ(DecodeAmqp("application/json", "[]"), 0u);
  EXPECT_TRUE(rejects_.empty());
  EXPECT_EQ(DecodeAmqp("application/json", std::string(100000, '[')), 0u);
  ExpectOnlyReject(RejectReason::kMalformedBody);
  EXPECT_EQ(DecodeAmqp("application/json", R"J([{"type": "task-started"}, {"type": "worker-heartbeat"}])J"), 0u);
  ASSERT_EQ(rejects_.size(), 2u);
  EXPECT_EQ(rejects_[0].reason, RejectReason::kMissingField);
  EXPECT_EQ(rejects_[1].reason, RejectReason::kMissingField);
}

// ------------------------------------------------------------------ fuzz

constexpr std::string_view kInteresting = "{}[]\":,\\ 0123456789-+.eEtfnul\x00\xff\x80\xc3"sv;

void Mutate(std::string& s, std::mt19937_64& rng) {
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int k = 0; k < n; ++k) {
    if (s.empty()) {
      s.push_back(static_cast<char>(rng()));
      continue;
    }
    const size_t pos = rng() % s.size();
    switch (rng() % 8) {
      case 0:
        s[pos] = static_cast<char>(rng());
        break;
      case 1:
        s[pos] = static_cast<char>(s[pos] ^ (1 << (rng() % 8)));
        break;
      case 2:
        s.insert(pos, 1, kInteresting[rng() % kInteresting.size()]);
        break;
      case 3:
        s.erase(pos, 1 + rng() % 16);
        break;
      case 4:
        s.resize(pos);
        break;
      case 5: {
        const std::string piece = s.substr(rng() % s.size(), 1 + rng() % 48);
        s.insert(pos, piece);
        break;
      }
      case 6:
        s.insert(pos, std::string(1 + rng() % 64, "[{"[rng() % 2]));
        break;
      default:
        s[pos] = kInteresting[rng() % kInteresting.size()];
        break;
    }
  }
}

// Reads every byte an event points at, so a dangling view shows up under ASan/valgrind.
size_t Touch(const Event& e) {
  size_t sum = e.type.size() + e.hostname.size() + e.uuid.size();
  for (std::string_view v : {e.type, e.hostname, e.uuid}) {
    for (char c : v)
      sum += static_cast<unsigned char>(c);
  }
  for (const OptStr* s :
       {&e.name, &e.args, &e.kwargs, &e.result, &e.exception, &e.traceback, &e.root_id, &e.parent_id, &e.eta,
        &e.expires, &e.exchange, &e.routing_key, &e.queue, &e.signum, &e.sw_ident, &e.sw_ver, &e.sw_sys}) {
    for (char c : s->value)
      sum += static_cast<unsigned char>(c);
  }
  return sum;
}

TEST(DecoderFuzz, RandomMutationsNeverCrash) {
  const std::string full_task =
      R"J([{"hostname": "w1@lab", "utcoffset": 0, "pid": 8466, "clock": 20, "uuid": "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", )J"
      R"J("name": "tasks.add", "args": "(2, 3)", "kwargs": {"a": [1, {"__type__": "uuid", "__value__": {"hex": "ab"}}]}, )J"
      R"J("root_id": "r", "parent_id": null, "retries": 0, "eta": null, "expires": "2026-11-26T02:00:00+00:00", )J"
      R"J("result": "5", "runtime": 0.5, "exception": "E()", "traceback": "tb", "queue": "celery", "exchange": "", )J"
      R"J("routing_key": "celery", "requeue": true, "terminated": false, "signum": 9, "expired": false, )J"
      R"J("timestamp": 1795655141.5, "type": "task-received"}, {"type": "task-x", "uuid": "u"}])J";
  const std::vector<std::string> bodies = {std::string(kHeartbeatBody), std::string(kTaskMultiBody),
                                           std::string(kTaskSentBody), std::string(kTaskSucceededBody), full_task};
  std::vector<std::string> envelopes;
  for (const std::string& b : bodies) {
    envelopes.push_back(KombuEnvelope(b));
  }
  EnvelopeOptions plain;
  plain.body_encoding = std::nullopt;
  envelopes.push_back(KombuEnvelope(full_task, plain));

  std::mt19937_64 rng(0x5747414c4bULL);  // fixed seed: reproducible
  EventDecoder dec(1 << 20);
  size_t delivered = 0, rejected = 0, checksum = 0;
  constexpr int kIterations = 20000;
  for (int i = 0; i < kIterations; ++i) {
    std::string input;
    switch (i % 3) {
      case 0:  // envelope-level damage
        input = envelopes[rng() % envelopes.size()];
        Mutate(input, rng);
        break;
      case 1: {  // body-level damage behind a valid envelope, so the event parser is reached
        std::string body = bodies[rng() % bodies.size()];
        Mutate(body, rng);
        input = KombuEnvelope(body, rng() % 4 ? EnvelopeOptions{} : plain);
        break;
      }
      default: {  // AMQP path
        std::string body = bodies[rng() % bodies.size()];
        Mutate(body, rng);
        input = body;
        break;
      }
    }
    size_t calls = 0;
    auto sink = [&](const Event& e) {
      ++calls;
      checksum += Touch(e);
    };
    auto on_reject = [&](RejectReason r, std::string_view detail) {
      ASSERT_LT(static_cast<int>(r), static_cast<int>(RejectReason::kCount));
      for (char c : detail)
        checksum += static_cast<unsigned char>(c);
      ++rejected;
    };
    const size_t n = i % 3 == 2 ? dec.DecodeBody("application/json", input, sink, on_reject)
                                : dec.DecodeKombuEnvelope(input, sink, on_reject);
    ASSERT_EQ(n, calls) << "iteration " << i;
    delivered += n;
  }
  // Not an assertion about quality, only that both outcomes were exercised.
  EXPECT_GT(delivered, 0u);
  EXPECT_GT(rejected, 0u);
  EXPECT_GT(checksum, 0u);
}

}  // namespace
}  // namespace stalk
