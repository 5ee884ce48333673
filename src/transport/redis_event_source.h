// Stalk — Celery monitoring server.
// RedisEventSource: follows Celery's event fanout on Redis (celery-protocol.md §2.1) on its own
// thread: PSUBSCRIBE <global_keyprefix><fanout_prefix>celeryev/* (and the bare channel, for apps with
// fanout_patterns=False), hands every payload to the sink, and reconnects with capped, jittered
// backoff when Redis goes away. A PING every few idle seconds notices a Redis that is frozen
// (SIGSTOP, swap) rather than gone. The thread only reads and queues: decoding happens on the ingest
// writer, so a slow state never makes Redis cut this subscriber for a full output buffer.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "common/ingest_stats.h"
#include "transport/broker_url.h"
#include "transport/redis_connection.h"

namespace stalk {

struct RedisEventOptions {
  std::string global_keyprefix;          // kombu transport option global_keyprefix
  std::string fanout_prefix = "/{db}.";  // kombu fanout_prefix: True = "/{db}.", False = ""
  std::string exchange = "celeryev";     // Celery's event_exchange
  int connect_timeout_ms = 3000;
  int idle_ping_ms = 5000;      // PING after this much silence
  int ping_timeout_ms = 10000;  // no PONG this long: the connection is declared dead
  int max_backoff_ms = 5000;
};

class RedisEventSource {
 public:
  using Sink = std::function<void(std::string&& payload, double received_at)>;

  RedisEventSource(BrokerUrl url, RedisEventOptions options, IngestStats& stats, Sink sink);
  ~RedisEventSource();

  void Start();
  void Stop();
  // The patterns subscribed to, e.g. "/0.celeryev/*".
  std::vector<std::string> Patterns() const;

 private:
  void Run();
  void Session();

  BrokerUrl url_;
  RedisEventOptions options_;
  IngestStats& stats_;
  Sink sink_;
  RedisConnection conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  bool connected_once_ = false;
};

// Expands kombu's fanout prefix ("/{db}." → "/3.").
std::string FormatFanoutPrefix(const std::string& prefix, int db);

}  // namespace stalk
