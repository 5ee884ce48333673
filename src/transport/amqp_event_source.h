// Stalk — Celery monitoring server.
// AmqpEventSource: follows Celery's events on RabbitMQ (celery-protocol.md §2.2) on its own thread.
// Per session it declares the topic exchange `celeryev` (durable, as Celery does), a private queue
// `celeryev.stalk.<uuid4>` (exclusive, auto-delete, non-durable, with x-message-ttl and x-expires from
// Celery's event_queue_ttl / event_queue_expires), binds it with `#`, sets basic.qos prefetch and
// consumes with explicit acks, acknowledged in batches (multiple=true) every prefetch/2 messages or
// when the stream pauses. Bodies are the bare event JSON (no kombu envelope); they go to the sink with
// their content type. On any failure it reconnects with capped, jittered backoff and declares a fresh
// queue (the old one died with its connection); events published in between are lost and the gap is
// logged and counted in IngestStats::reconnects, as for Redis. A dead Stalk leaves nothing behind: the
// exclusive queue goes with the connection, x-expires catches a connection the broker still thinks
// alive.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/ingest_stats.h"
#include "transport/amqp_connection.h"
#include "transport/broker_url.h"

namespace stalk {

struct AmqpEventOptions {
  std::string exchange = "celeryev";      // Celery's event_exchange
  std::string queue_prefix = "celeryev";  // Celery's event_queue_prefix; the queue is <prefix>.stalk.<uuid>
  double queue_ttl_s = 5.0;               // Celery's event_queue_ttl (x-message-ttl); <=0: none
  double queue_expires_s = 60.0;          // Celery's event_queue_expires (x-expires); <=0: none
  int prefetch = 1000;                    // basic.qos prefetch_count
  int heartbeat_s = 30;
  int connect_timeout_ms = 3000;
  int max_backoff_ms = 5000;
};

class AmqpEventSource {
 public:
  using Sink = std::function<void(std::string&& body, std::string_view content_type, double received_at)>;

  AmqpEventSource(BrokerUrl url, AmqpEventOptions options, IngestStats& stats, Sink sink);
  ~AmqpEventSource();

  void Start();
  void Stop();
  // The current session's queue name ("" before the first connection). Thread-safe.
  std::string QueueName() const;

 private:
  void Run();
  void Session();
  Result<bool> Setup(const std::string& queue);

  BrokerUrl url_;
  AmqpEventOptions options_;
  IngestStats& stats_;
  Sink sink_;
  AmqpConnection conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  bool connected_once_ = false;
  mutable std::mutex name_mu_;
  std::string queue_name_;
};

}  // namespace stalk
