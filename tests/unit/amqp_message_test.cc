// Stalk — Celery monitoring server.
// AmqpProperties / AmqpTableToJson: kombu's headers survive the trip through an AMQP field table
// (encoded and decoded by rabbitmq-c as on the wire), and the basic properties follow the message.
#include <gtest/gtest.h>

#include <vector>

#include "control/amqp_message.h"
#include "control/pidbox.h"

namespace stalk {
namespace {

nlohmann::json WireRoundTrip(const amqp_table_t& table) {
  std::vector<char> buf(65536);
  amqp_bytes_t out{buf.size(), buf.data()};
  size_t offset = 0;
  amqp_table_t copy = table;
  EXPECT_EQ(amqp_encode_table(out, &copy, &offset), AMQP_STATUS_OK);
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t decoded;
  size_t read = 0;
  amqp_bytes_t in{offset, buf.data()};
  EXPECT_EQ(amqp_decode_table(in, &pool, &decoded, &read), AMQP_STATUS_OK);
  nlohmann::json j = AmqpTableToJson(decoded);
  empty_amqp_pool(&pool);
  return j;
}

TEST(AmqpMessage, HeadersRoundTripThroughTheWireFormat) {
  KombuMessage m;
  m.headers = {{"lang", "py"},
               {"task", "app.add"},
               {"retries", 0},
               {"eta", nullptr},
               {"ignore_result", false},
               {"timelimit", {nullptr, 30}},
               {"stamps", nlohmann::json::object()},
               {"clock", 12345678901LL},
               {"expires", 1.5},
               {"nested", {{"a", {1, "two", true}}}}};
  AmqpProperties props(m);
  ASSERT_TRUE(props.get()._flags & AMQP_BASIC_HEADERS_FLAG);
  EXPECT_EQ(WireRoundTrip(props.get().headers), m.headers);
}

TEST(AmqpMessage, PropertiesFollowTheMessage) {
  KombuMessage m;
  m.properties = {
      {"delivery_mode", 2}, {"priority", 3}, {"correlation_id", "abc"}, {"reply_to", "r"}, {"expiration", "60000"}};
  AmqpProperties p(m);
  const auto& b = p.get();
  EXPECT_EQ(std::string(static_cast<const char*>(b.content_type.bytes), b.content_type.len), "application/json");
  EXPECT_EQ(std::string(static_cast<const char*>(b.content_encoding.bytes), b.content_encoding.len), "utf-8");
  EXPECT_EQ(b.delivery_mode, 2);
  EXPECT_EQ(b.priority, 3);
  EXPECT_EQ(std::string(static_cast<const char*>(b.correlation_id.bytes), b.correlation_id.len), "abc");
  EXPECT_EQ(std::string(static_cast<const char*>(b.expiration.bytes), b.expiration.len), "60000");
  AmqpProperties q(m, 7);  // PublishTask's priority wins
  EXPECT_EQ(q.get().priority, 7);
}

TEST(AmqpMessage, PidboxReplyTicketFromHeaders) {
  KombuMessage reply;
  reply.headers = {{"ticket", "t-1"}, {"clock", 3}};
  AmqpProperties props(reply);
  DecodedEnvelope env;
  env.headers = WireRoundTrip(props.get().headers);
  env.body = R"({"w1@h": {"ok": "pong"}})";
  auto r = DecodePidboxReply(env);
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->ticket, "t-1");
  ASSERT_EQ(r->replies.size(), 1u);
  EXPECT_EQ(r->replies[0].hostname, "w1@h");
}

}  // namespace
}  // namespace stalk
