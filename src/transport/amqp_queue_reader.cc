// Stalk — Celery monitoring server.
#include "transport/amqp_queue_reader.h"

namespace stalk {

AmqpQueueReader::AmqpQueueReader(BrokerUrl url, int timeout_ms) : url_(std::move(url)), timeout_ms_(timeout_ms) {}

Result<std::vector<QueueDepth>> AmqpQueueReader::Lengths(const std::vector<std::string>& queues) {
  std::lock_guard lock(mu_);
  std::vector<QueueDepth> out;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!conn_.connected()) {
      AmqpConnectOptions co;
      co.connect_timeout_ms = timeout_ms_;
      co.rpc_timeout_ms = timeout_ms_;
      co.heartbeat_s = 0;  // idle between polls; a dead connection shows on the next declare
      co.client_name = "stalk queue lengths";
      if (auto c = conn_.Connect(url_, co); !c) {
        return Error{c.error()};
      }
    }
    out.clear();
    bool failed = false;
    for (const auto& name : queues) {
      auto info = conn_.InspectQueue(name);
      if (info) {
        out.push_back({name, info->messages, info->consumers});
      } else if (conn_.connected()) {
        out.push_back({name, 0, 0});  // 404: no such queue (the channel was reopened)
      } else {
        failed = true;  // a pooled connection may have died with a broker restart: retry once fresh
        break;
      }
    }
    if (!failed) {
      return out;
    }
    conn_.Close();
  }
  return Error{"cannot read queue lengths from " + url_.Redacted()};
}

}  // namespace stalk
