// Stalk — Celery monitoring server.
// RabbitManagementReader: the URL Flower's --broker_api turns into (vhost "/" as %2F, never a bare
// "/" that lists every vhost), the password hidden in messages, and a clear error when nothing listens.
#include <gtest/gtest.h>

#include "transport/rabbitmq_management.h"

namespace stalk {
namespace {

TEST(RabbitManagement, QueuesUrlEncodesTheVhost) {
  RabbitManagementReader r("http://guest:guest@127.0.0.1:15672/api", "/");
  EXPECT_EQ(r.QueuesUrl(), "http://guest:guest@127.0.0.1:15672/api/queues/%2F?columns=name,messages,consumers");
  RabbitManagementReader v("http://h:15672/api/", "prod/eu 1");
  EXPECT_EQ(v.QueuesUrl(), "http://h:15672/api/queues/prod%2Feu%201?columns=name,messages,consumers");
}

TEST(RabbitManagement, RedactedHidesThePassword) {
  RabbitManagementReader r("http://admin:s3cr3t@127.0.0.1:15672/api/", "/");
  EXPECT_EQ(r.Redacted(), "http://admin:***@127.0.0.1:15672/api/");
  RabbitManagementReader n("http://127.0.0.1:15672/api/", "/");
  EXPECT_EQ(n.Redacted(), "http://127.0.0.1:15672/api/");
}

TEST(RabbitManagement, UnreachableApiIsAnErrorWithoutThePassword) {
  RabbitManagementReader r("http://admin:s3cr3t@127.0.0.1:1/api/", "/", 500);
  auto l = r.Lengths({"celery"});
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().find("s3cr3t"), std::string::npos) << l.error();
  EXPECT_NE(l.error().find("admin:***"), std::string::npos) << l.error();
}

}  // namespace
}  // namespace stalk
