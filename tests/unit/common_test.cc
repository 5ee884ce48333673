// Stalk — Celery monitoring server.
// Unit tests of common/: base64, JSON writer, UUID text <-> bytes.
#include <gtest/gtest.h>

#include <thread>

#include "common/audit_log.h"
#include "common/base64.h"
#include "common/json_writer.h"
#include "common/task_id.h"

namespace stalk {
namespace {

TEST(AuditLog, TakesTheThreadsActorKeepsRecentAndFeedsTheSink) {
  AuditLog log(3);
  std::vector<std::string> sunk;
  log.SetSink([&](const AuditEntry& e) { sunk.push_back(e.actor + " " + e.action + " " + e.target); });
  SetAuditActor(AuditActor{"alice", "operator", "10.0.0.7"});
  for (int i = 0; i < 5; ++i) {
    log.Record(AuditEntry{1.0 * i, "", "", "", "shutdown", "w" + std::to_string(i), "{}", "ok", ""});
  }
  std::thread other([&] { log.Record(AuditEntry{9, "", "", "", "revoke", "t", "{}", "ok", ""}); });
  other.join();
  auto recent = log.Recent(10);
  ASSERT_EQ(recent.size(), 3u);  // bounded
  EXPECT_EQ(recent[0].action, "revoke");
  EXPECT_EQ(recent[0].actor, "-");  // another thread: no request principal set there
  EXPECT_EQ(recent[1].target, "w4");
  EXPECT_EQ(recent[1].actor, "alice");
  EXPECT_EQ(recent[1].role, "operator");
  EXPECT_EQ(recent[1].remote, "10.0.0.7");
  EXPECT_EQ(log.recorded(), 6u);
  ASSERT_EQ(sunk.size(), 6u);
  EXPECT_EQ(sunk[0], "alice shutdown w0");
}

TEST(Base64, RoundTripsAllLengths) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    data.push_back(static_cast<char>(i * 37));
    std::string back;
    ASSERT_TRUE(Base64Decode(Base64Encode(data), back)) << i;
    EXPECT_EQ(back, data);
  }
}

TEST(Base64, DecodesKombuBodyAndRejectsGarbage) {
  std::string out;
  ASSERT_TRUE(Base64Decode("eyJhIjogMX0=", out));
  EXPECT_EQ(out, "{\"a\": 1}");
  EXPECT_FALSE(Base64Decode("not base64!", out));
  EXPECT_FALSE(Base64Decode("abcde", out));  // length 5 mod 4 == 1 cannot be base64
}

TEST(JsonWriter, EscapesAndFormatsLikePython) {
  JsonWriter w;
  w.BeginObject();
  w.Field("s", std::string_view("a\"b\\c\n\x01"));
  w.Key("d");
  w.Double(1.0);
  w.Key("e");
  w.Double(0.1);
  w.Key("n");
  w.Null();
  w.Key("a");
  w.BeginArray();
  w.Int(-3);
  w.Bool(true);
  w.EndArray();
  w.EndObject();
  EXPECT_EQ(w.str(), R"({"s":"a\"b\\c\n\u0001","d":1.0,"e":0.1,"n":null,"a":[-3,true]})");
}

TEST(JsonWriter, ReplacesInvalidUtf8AndKeepsValid) {
  std::string out;
  AppendJsonString(out, "ok \xC3\xA9 bad \xFF end");
  EXPECT_EQ(out, "\"ok \xC3\xA9 bad \xEF\xBF\xBD end\"");
}

TEST(JsonWriter, NonFiniteIsNull) {
  JsonWriter w;
  w.BeginArray();
  w.Double(1.0 / 0.0);
  w.EndArray();
  EXPECT_EQ(w.str(), "[null]");
}

TEST(Uuid, ParsesAndFormatsCanonicalLowerCase) {
  Uuid u;
  ASSERT_TRUE(ParseUuid("e42ceb2d-8730-47b5-8b4d-8e0d2a1ef7c9", u));
  EXPECT_EQ(FormatUuid(u), "e42ceb2d-8730-47b5-8b4d-8e0d2a1ef7c9");
  EXPECT_FALSE(ParseUuid("E42CEB2D-8730-47B5-8B4D-8E0D2A1EF7C9", u));  // would not round-trip
  EXPECT_FALSE(ParseUuid("my-custom-task-id", u));
  EXPECT_FALSE(ParseUuid("e42ceb2d-8730-47b5-8b4d-8e0d2a1ef7cz", u));
}

}  // namespace
}  // namespace stalk
