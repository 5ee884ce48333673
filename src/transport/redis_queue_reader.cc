// Stalk — Celery monitoring server.
#include "transport/redis_queue_reader.h"

namespace stalk {

RedisQueueReader::RedisQueueReader(BrokerUrl url, RedisQueueOptions options)
    : url_(std::move(url)), options_(std::move(options)) {}

Result<std::vector<QueueDepth>> RedisQueueReader::Lengths(const std::vector<std::string>& queues) {
  std::lock_guard lock(mu_);
  if (!conn_.connected()) {
    if (auto r = conn_.Connect(url_, options_.timeout_ms, /*select_db=*/true); !r) {
      return Error{r.error()};
    }
  }
  std::vector<std::string> keys;
  for (const auto& q : queues) {
    for (int step : options_.priority_steps) {
      keys.push_back(options_.global_keyprefix + q +
                     (step == 0 ? std::string() : options_.priority_sep + std::to_string(step)));
    }
  }
  for (const auto& k : keys) {
    if (auto s = conn_.Send({"LLEN", k}); !s) {
      return Error{s.error()};
    }
  }
  std::vector<QueueDepth> out;
  out.reserve(queues.size());
  size_t k = 0;
  for (const auto& q : queues) {
    QueueDepth d{q, 0};
    for (size_t s = 0; s < options_.priority_steps.size(); ++s, ++k) {
      auto r = conn_.ReadReply(options_.timeout_ms);
      if (!r || !*r) {
        conn_.Close();
        return Error{r ? "Redis did not answer LLEN in time" : r.error()};
      }
      if ((*r)->type == REDIS_REPLY_INTEGER) {
        d.messages += (*r)->integer;
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

int64_t RedisQueueReader::Unacked() {
  std::lock_guard lock(mu_);
  if (!conn_.connected() && !conn_.Connect(url_, options_.timeout_ms, true)) {
    return -1;
  }
  auto r = conn_.Command({"HLEN", options_.global_keyprefix + "unacked"}, options_.timeout_ms);
  if (!r || (*r)->type != REDIS_REPLY_INTEGER) {
    return -1;
  }
  return (*r)->integer;
}

}  // namespace stalk
