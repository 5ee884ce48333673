// Stalk — Celery monitoring server.
// RedisConnection's subscribed-mode reads (ReadPubSub: pmessages parsed in place from the receive
// buffer, anything else through hiredis) against a real redis-server started by the test on
// 127.0.0.1: payloads of every size from empty to several receive buffers, bytes that look like RESP
// inside payloads, replies interleaved with messages, a return to normal mode (ReadReply after
// ReadPubSub), the idle timeout and Interrupt().
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "transport/redis_connection.h"

extern char** environ;

namespace stalk {
namespace {

using Clock = std::chrono::steady_clock;

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A private redis-server for one test: 127.0.0.1, free port, no persistence; killed at the end.
class RedisServer {
 public:
  RedisServer() {
    port_ = FreePort();
    dir_ = std::filesystem::temp_directory_path() / ("stalk-pubsub-" + std::to_string(port_));
    std::filesystem::create_directories(dir_);
    const std::string port = std::to_string(port_);
    const std::string dir = dir_.string();
    std::vector<std::string> args = {
        "redis-server", "--bind", "127.0.0.1", "--port", port,        "--save",          "",
        "--appendonly", "no",     "--dir",     dir,      "--logfile", dir + "/redis.log"};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
    }
  }
  ~RedisServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  BrokerUrl Url() const {
    BrokerUrl u;
    u.host = "127.0.0.1";
    u.port = port_;
    return u;
  }
  // Connects `c`, retrying until the server accepts or 10 s pass.
  bool ConnectWhenUp(RedisConnection& c) const {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      if (c.Connect(Url(), 1000, false).ok())
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  bool started() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path dir_;
};

std::string Publish(std::string_view channel, std::string_view payload) {
  std::string cmd = "*3\r\n$7\r\nPUBLISH\r\n$" + std::to_string(channel.size()) + "\r\n";
  cmd.append(channel);
  cmd += "\r\n$" + std::to_string(payload.size()) + "\r\n";
  cmd.append(payload);
  cmd += "\r\n";
  return cmd;
}

// What a subscriber saw, in order: "msg:<channel>:<payload>" or "reply:<kind>".
struct Seen {
  std::vector<std::string> items;
  size_t messages = 0;
};

// Reads until `want` items were seen or 10 s pass.
void ReadUntil(RedisConnection& c, Seen& seen, size_t want) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (seen.items.size() < want && Clock::now() < deadline) {
    auto r = c.ReadPubSub(200, [&](std::string_view channel, std::string_view payload) {
      seen.items.push_back("msg:" + std::string(channel) + ":" + std::string(payload));
      ++seen.messages;
    });
    ASSERT_TRUE(r.ok()) << r.error();
    if (r->reply) {
      const redisReply* rep = r->reply.get();
      if (rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 && rep->element[0]->type == REDIS_REPLY_STRING) {
        seen.items.push_back("reply:" + std::string(rep->element[0]->str, rep->element[0]->len));
      } else if (rep->type == REDIS_REPLY_STATUS) {
        seen.items.push_back("reply:" + std::string(rep->str, rep->len));
      } else {
        seen.items.push_back("reply:other");
      }
    }
  }
}

class RedisPubSubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.started()) << "cannot start redis-server (scripts/bootstrap.sh installs it)";
    ASSERT_TRUE(server_.ConnectWhenUp(sub_));
    ASSERT_TRUE(server_.ConnectWhenUp(pub_));
    ASSERT_TRUE(sub_.Send({"PSUBSCRIBE", "/0.celeryev/*"}).ok());
    Seen s;
    ReadUntil(sub_, s, 1);
    ASSERT_EQ(s.items, std::vector<std::string>{"reply:psubscribe"});
  }

  RedisServer server_;
  RedisConnection sub_, pub_;
};

TEST_F(RedisPubSubTest, DeliversEveryPayloadExactlyAndInOrder) {
  std::mt19937 rng(7);
  std::vector<std::string> payloads = {
      "",
      "x",
      "{\"body\": \"eyJ0eXBlIjogIndvcmtlci1oZWFydGJlYXQifQ==\"}",
      "*4\r\n$8\r\npmessage\r\n$3\r\nabc\r\n",  // looks like RESP: must stay payload bytes
      std::string("\0\r\n\0", 4),
      std::string(128 * 1024 - 7, 'a'),        // around one receive chunk
      std::string(3 * 1024 * 1024 + 11, 'b'),  // many chunks: the buffer grows, then shrinks back
      "after the big one",
  };
  for (int i = 0; i < 2000; ++i) {  // a burst of realistic sizes, pipelined
    std::string p(200 + rng() % 1800, ' ');
    for (auto& ch : p)
      ch = static_cast<char>('A' + rng() % 26);
    payloads.push_back(std::move(p));
  }
  std::string pipeline;
  for (size_t i = 0; i < payloads.size(); ++i) {
    pipeline += Publish("/0.celeryev/task.multi", payloads[i]);
  }
  ASSERT_TRUE(pub_.SendRaw(pipeline).ok());
  for (size_t i = 0; i < payloads.size(); ++i) {
    auto r = pub_.ReadReply(5000);
    ASSERT_TRUE(r.ok() && *r) << "PUBLISH " << i;
    ASSERT_EQ((*r)->integer, 1) << "one subscriber";
  }
  Seen seen;
  ReadUntil(sub_, seen, payloads.size());
  ASSERT_EQ(seen.items.size(), payloads.size());
  for (size_t i = 0; i < payloads.size(); ++i) {
    ASSERT_EQ(seen.items[i], "msg:/0.celeryev/task.multi:" + payloads[i]) << "message " << i;
  }
}

TEST_F(RedisPubSubTest, RepliesBetweenMessagesKeepTheirOrder) {
  ASSERT_TRUE(pub_.SendRaw(Publish("/0.celeryev/worker.heartbeat", "one")).ok());
  ASSERT_TRUE(pub_.ReadReply(5000).ok());
  ASSERT_TRUE(sub_.Send({"PING"}).ok());
  // Redis orders each connection's output, not two connections' commands: wait until it ran the
  // subscriber's PING (CLIENT LIST shows it as the last command) before publishing more, so the
  // subscriber's socket holds message, PONG, message, message — read in one go below.
  bool ping_seen = false;
  for (int i = 0; i < 500 && !ping_seen; ++i) {
    auto list = pub_.Command({"CLIENT", "LIST"}, 5000);
    ASSERT_TRUE(list.ok()) << list.error();
    ping_seen = std::string_view((*list)->str, (*list)->len).find("cmd=ping") != std::string_view::npos;
    if (!ping_seen)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(ping_seen);
  Seen seen;
  ASSERT_TRUE(pub_.SendRaw(Publish("/0.celeryev/task.sent", "two") + Publish("/0.celeryev/task.sent", "three")).ok());
  ASSERT_TRUE(pub_.ReadReply(5000).ok());
  ASSERT_TRUE(pub_.ReadReply(5000).ok());
  ReadUntil(sub_, seen, 4);
  EXPECT_EQ(seen.items, (std::vector<std::string>{"msg:/0.celeryev/worker.heartbeat:one", "reply:pong",
                                                  "msg:/0.celeryev/task.sent:two", "msg:/0.celeryev/task.sent:three"}));
  // Back to normal mode: ReadReply picks up where ReadPubSub left the buffer.
  ASSERT_TRUE(sub_.Send({"PUNSUBSCRIBE"}).ok());
  Seen unsub;
  ReadUntil(sub_, unsub, 1);
  EXPECT_EQ(unsub.items, std::vector<std::string>{"reply:punsubscribe"});
  auto pong = sub_.Command({"PING"}, 5000);
  ASSERT_TRUE(pong.ok()) << pong.error();
  EXPECT_EQ(std::string((*pong)->str, (*pong)->len), "PONG");
}

TEST_F(RedisPubSubTest, TimesOutWhenIdleAndStopsOnInterrupt) {
  auto r = sub_.ReadPubSub(50, [](std::string_view, std::string_view) {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->messages, 0u);
  EXPECT_FALSE(r->reply);

  // Whether Interrupt lands before or during the read, the read must end with an error, promptly.
  std::thread stopper([this] { sub_.Interrupt(); });
  const auto start = Clock::now();
  auto r2 = sub_.ReadPubSub(10000, [](std::string_view, std::string_view) {});
  stopper.join();
  EXPECT_FALSE(r2.ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_FALSE(sub_.connected());
}

}  // namespace
}  // namespace stalk
