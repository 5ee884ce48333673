// Stalk — Celery monitoring server.
// BrokerUrl parsing: the URL forms Celery/kombu accept, and that passwords never reach Redacted().
#include <gtest/gtest.h>

#include "transport/broker_url.h"
#include "transport/redis_event_source.h"

namespace stalk {
namespace {

TEST(BrokerUrl, RedisForms) {
  auto u = ParseBrokerUrl("redis://127.0.0.1:6390/3");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6390);
  EXPECT_EQ(u->db, 3);
  EXPECT_TRUE(u->password.empty());

  u = ParseBrokerUrl("redis://localhost");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 6379);
  EXPECT_EQ(u->db, 0);

  u = ParseBrokerUrl("redis://:s%40cret@10.0.0.5:6379/0");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->password, "s@cret");
  EXPECT_TRUE(u->username.empty());

  u = ParseBrokerUrl("redis://alice:pw@[::1]:7000/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 7000);
  EXPECT_EQ(u->username, "alice");
  EXPECT_EQ(u->db, 2);
}

TEST(BrokerUrl, UnixSocketForms) {
  auto u = ParseBrokerUrl("redis+socket:///run/redis.sock?virtual_host=4");
  ASSERT_TRUE(u.ok()) << u.error();
  EXPECT_EQ(u->unix_path, "/run/redis.sock");
  EXPECT_EQ(u->db, 4);
  u = ParseBrokerUrl("unix:///tmp/r.sock?db=2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->db, 2);
}

TEST(BrokerUrl, RejectsNonsenseWithClearErrors) {
  EXPECT_FALSE(ParseBrokerUrl("127.0.0.1:6379").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://host:notaport/0").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://host:6379/x").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis://host:70000/0").ok());
  EXPECT_FALSE(ParseBrokerUrl("sqs://whatever").ok());
  EXPECT_FALSE(ParseBrokerUrl("redis+socket://").ok());
}

TEST(BrokerUrl, RedactedNeverShowsThePassword) {
  auto u = ParseBrokerUrl("redis://user:stalk_dev_your_password_here@127.0.0.1:6379/1");
  ASSERT_TRUE(u.ok());
  const std::string shown = u->Redacted();
  EXPECT_EQ(shown.find("stalk_dev_your_password_here"), std::string::npos) << shown;
  EXPECT_NE(shown.find("***"), std::string::npos);
  EXPECT_NE(shown.find("127.0.0.1:6379/1"), std::string::npos);
}

TEST(BrokerUrl, AmqpDefaults) {
  auto u = ParseBrokerUrl("amqp://guest:guest@127.0.0.1:5682//");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->kind, BrokerUrl::Kind::kAmqp);
  EXPECT_EQ(u->port, 5682);
  EXPECT_EQ(u->vhost, "/");
}

TEST(FanoutPrefix, FormatsKombuDbPlaceholder) {
  EXPECT_EQ(FormatFanoutPrefix("/{db}.", 3), "/3.");
  EXPECT_EQ(FormatFanoutPrefix("", 3), "");
  EXPECT_EQ(FormatFanoutPrefix("/custom.", 3), "/custom.");
}

}  // namespace
}  // namespace stalk
