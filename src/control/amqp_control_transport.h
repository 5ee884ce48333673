// Stalk — Celery monitoring server.
// AmqpControlTransport: ControlTransport over RabbitMQ, as kombu's Mailbox does it (celery-protocol.md
// §3.5 "AMQP", §5.3):
//  - commands: publish to the fanout exchange `celery.pidbox` (durable=False), routing key "";
//  - replies: per call a fresh oid and queue `<oid>.reply.celery.pidbox` (auto-delete, x-expires 10 s,
//    as kombu's get_reply_queue) bound to the direct exchange `reply.celery.pidbox` (durable=False)
//    with routing key <oid>, consumed no-ack; the request's reply_to names that exchange and key, the
//    `ticket` header matches a reply to its request. The queue is deleted after the call. AMQP has no
//    listener count, so collection ends on the idle timeout (Celery's behaviour) or on `limit`;
//  - tasks: the default exchange "" with routing key = queue, after a passive declare (a missing
//    queue is declared durable, as Celery's default queue is);
//  - events: the topic exchange `celeryev` with the event's routing key.
// Connections: a small pool (one per concurrent call); a pooled connection is checked by the first,
// idempotent declare of the call, and replaced by a fresh one when that fails.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/control_transport.h"
#include "transport/amqp_connection.h"
#include "transport/broker_url.h"

namespace stalk {

struct AmqpControlOptions {
  int connect_timeout_ms = 3000;
  int rpc_timeout_ms = 3000;
  size_t max_idle_connections = 4;
  int reply_queue_expires_ms = 10000;  // kombu's reply_queue_expires
};

class AmqpControlTransport : public ControlTransport {
 public:
  AmqpControlTransport(BrokerUrl url, AmqpControlOptions options);
  ~AmqpControlTransport() override;

  Result<std::vector<std::vector<ControlReply>>> BroadcastMany(const std::vector<ControlRequest>& requests,
                                                               const CollectOptions& options) override;
  Result<bool> PublishTask(const std::string& queue, int priority, const KombuMessage& message) override;
  Result<bool> PublishEvent(const std::string& routing_key, const KombuMessage& message) override;

 private:
  using Conn = std::unique_ptr<AmqpConnection>;
  // A connection on which `first` (an idempotent declare) succeeded: pooled when it works, else fresh.
  Result<Conn> Acquire(const std::function<Result<bool>(AmqpConnection&)>& first);
  void Release(Conn conn);

  BrokerUrl url_;
  AmqpControlOptions options_;
  std::mutex mu_;
  std::vector<Conn> idle_;
  std::atomic<int64_t> clock_{0};
};

}  // namespace stalk
