// Stalk — Celery monitoring server.
// QueueDepth: one queue's length as a broker reports it, and the function type serve.cc polls, so
// Redis (RedisQueueReader) and RabbitMQ (AmqpQueueReader) fit the same callers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/result.h"

namespace stalk {

struct QueueDepth {
  std::string name;
  int64_t messages = 0;
  int64_t consumers = -1;  // -1: the broker does not say (Redis)
};

using QueueLengthFn = std::function<Result<std::vector<QueueDepth>>(const std::vector<std::string>&)>;

}  // namespace stalk
