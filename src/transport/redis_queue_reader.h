// Stalk — Celery monitoring server.
// RedisQueueReader: queue lengths as kombu counts them (celery-protocol.md §4.1): the sum of LLEN over
// the queue key and its priority sub-keys "<queue>\x06\x16<step>" (steps 3, 6, 9 by default), all
// pipelined in one round trip. Its own connection (SELECTs the broker db), reconnected on demand.
// Thread-safe (one mutex; callers are the HTTP pool and the metrics poller).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "transport/broker_url.h"
#include "transport/queue_depth.h"
#include "transport/redis_connection.h"

namespace stalk {

struct RedisQueueOptions {
  std::string global_keyprefix;
  std::string priority_sep = std::string("\x06\x16", 2);
  std::vector<int> priority_steps{0, 3, 6, 9};
  int timeout_ms = 2000;
};

class RedisQueueReader {
 public:
  RedisQueueReader(BrokerUrl url, RedisQueueOptions options);
  Result<std::vector<QueueDepth>> Lengths(const std::vector<std::string>& queues);
  // Unacknowledged messages held by workers (kombu's "unacked" hash); -1 when unknown.
  int64_t Unacked();

 private:
  BrokerUrl url_;
  RedisQueueOptions options_;
  std::mutex mu_;
  RedisConnection conn_;
};

}  // namespace stalk
