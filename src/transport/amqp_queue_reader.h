// Stalk — Celery monitoring server.
// AmqpQueueReader: queue lengths on RabbitMQ by passive queue.declare (celery-protocol.md §4.2):
// message_count (ready messages) and consumer_count per queue, one synchronous round trip each on a
// private connection, made on demand and remade after a failure. A queue that does not exist (404,
// which closes the channel; AmqpConnection reopens it) counts 0 messages and 0 consumers, as
// RedisQueueReader reports a missing list. Thread-safe (one mutex; callers are the HTTP pool and the
// metrics poller).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "transport/amqp_connection.h"
#include "transport/broker_url.h"
#include "transport/queue_depth.h"

namespace stalk {

class AmqpQueueReader {
 public:
  explicit AmqpQueueReader(BrokerUrl url, int timeout_ms = 2000);
  Result<std::vector<QueueDepth>> Lengths(const std::vector<std::string>& queues);

 private:
  BrokerUrl url_;
  int timeout_ms_;
  std::mutex mu_;
  AmqpConnection conn_;
};

}  // namespace stalk
