// Stalk — Celery monitoring server.
// Regression tests for the bugs the fuzzers found (fuzz/README.md, scripts/fuzz.sh): each test names
// the fuzzer and the input it found, and states the behaviour that is now required. The raw inputs
// are also kept in fuzz/corpus/<target>/regression-* and replayed by fuzz_corpus_test.
#include <gtest/gtest.h>

#include <string>

#include "control/pidbox.h"
#include "control/task_submission.h"
#include "transport/broker_url.h"
#include "transport/resp_pmessage.h"

namespace stalk {
namespace {

// fuzz_broker_url: "redis://[::1]:618610" parsed with port 618610 — the IPv6 form skipped the
// 1..65535 check of the host:port form — and "[::1]garbage" ignored the garbage.
TEST(FuzzRegression, Ipv6BrokerUrlPortIsChecked) {
  EXPECT_FALSE(ParseBrokerUrl("redis://[::1]:618610").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://[::1]:0/0").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://[::1]:-5/0").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://[::1]garbage/0").ok());
  auto u = ParseBrokerUrl("redis://[::1]:65535/1");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->port, 65535);
  EXPECT_EQ(u->host, "::1");
  u = ParseBrokerUrl("redis://[::1]/2");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->port, 6379);
}

// fuzz_broker_url: "unix:///tmp/redis.sock?db=-1" parsed with db -1 (the TCP form rejects it).
TEST(FuzzRegression, UnixSocketDbMustNotBeNegative) {
  EXPECT_FALSE(ParseBrokerUrl("unix:///tmp/redis.sock?db=-1").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis+socket:///tmp/redis.sock?virtual_host=-3").ok());
  auto u = ParseBrokerUrl("unix:///tmp/redis.sock?db=2");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->db, 2);
}

// fuzz_resp: "*4 $8 pmessage $06 ..." — ParsePMessage read the length "06" as 6 and waited for more
// bytes, while hiredis rejects a length with a leading zero: the fast path must hand such bytes to
// hiredis (kOther), never treat them as a pmessage.
TEST(FuzzRegression, RespLengthWithLeadingZeroIsNotAPMessage) {
  PMessageView m;
  const std::string found = "*4\r\n$8\r\npmessage\r\n$06\r\n/ZWd:L";
  EXPECT_EQ(ParsePMessage(found.data(), found.size(), m), PMessageParse::kOther);
  const std::string complete = "*4\r\n$8\r\npmessage\r\n$01\r\n*\r\n$1\r\nc\r\n$1\r\np\r\n";
  EXPECT_EQ(ParsePMessage(complete.data(), complete.size(), m), PMessageParse::kOther);
  const std::string plain = "*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$1\r\nc\r\n$0\r\n\r\n";
  ASSERT_EQ(ParsePMessage(plain.data(), plain.size(), m), PMessageParse::kComplete);
  EXPECT_EQ(m.channel, "c");
  EXPECT_EQ(m.payload, "");
  EXPECT_EQ(m.size, plain.size());
  EXPECT_EQ(ParsePMessage(plain.data(), plain.size() - 1, m), PMessageParse::kIncomplete);
}

// fuzz_config: a task submission body (POST /api/task/apply, send-task) of `99e99999999` threw
// nlohmann's out_of_range (406, number overflow), which the parse_error handler did not catch: the
// request failed with a 500 instead of a 400 that says what is wrong.
TEST(FuzzRegression, OverflowingNumberInATaskBodyIsABadRequest) {
  for (const char* body : {"99e99999999", R"({"args": [1e999]})", R"({"countdown": -1e400})"}) {
    auto spec = ParseTaskSubmission(body, "app.add", 1700000000.0);
    ASSERT_FALSE(spec.ok()) << body;
    EXPECT_NE(spec.error().find("malformed JSON body"), std::string::npos) << spec.error();
  }
}

// fuzz_control_reply: a pidbox reply body {"": {"ok": "pong"}} became a reply from a worker named ""
// (a blank row in the dashboard, and one more "reply" counted toward a call's expected total).
TEST(FuzzRegression, PidboxReplyWithoutAWorkerNameIsIgnored) {
  DecodedEnvelope envelope;
  envelope.headers = {{"ticket", "t-1"}};
  envelope.body = R"({"": {"ok": "pong"}, "w1@host": {"ok": "pong"}})";
  auto reply = DecodePidboxReply(envelope);
  ASSERT_TRUE(reply.ok()) << reply.error();
  ASSERT_EQ(reply->replies.size(), 1u);
  EXPECT_EQ(reply->replies[0].hostname, "w1@host");
  EXPECT_EQ(reply->ticket, "t-1");
}

}  // namespace
}  // namespace stalk
