// Stalk — Celery monitoring server.
// AmqpConnection: one AMQP 0-9-1 connection (rabbitmq-c) with one channel, for one thread at a time:
// connect amqp[s]://user:pass@host:port/vhost with heartbeats, the few methods Stalk needs (declare,
// bind, qos, consume, ack, publish, passive declare), and every failure as a Result whose text names
// the step and the broker's reply. A channel-level error (404 on a passive declare, 406 on a flag
// mismatch) is acknowledged and the channel reopened, so the connection stays usable; a
// connection-level error or a socket failure leaves it closed (connected() false).
// Heartbeats are sent and checked by rabbitmq-c whenever the owner waits in Next(): call it at least
// every heartbeat/2 seconds.
#pragma once

#include <amqp.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/function_ref.h"
#include "common/result.h"
#include "transport/broker_url.h"

namespace stalk {

struct AmqpConnectOptions {
  int connect_timeout_ms = 3000;
  int rpc_timeout_ms = 5000;  // synchronous methods (declare, bind...)
  int heartbeat_s = 30;       // 0 disables
  int frame_max = 131072;
  std::string client_name = "stalk";
};

struct AmqpQueueInfo {
  std::string name;
  uint32_t messages = 0;  // ready messages
  uint32_t consumers = 0;
};

struct AmqpQueueSpec {
  std::string name;  // empty: server-named
  bool passive = false;
  bool durable = false;
  bool exclusive = false;
  bool auto_delete = false;
  int64_t message_ttl_ms = -1;  // x-message-ttl; <0: none
  int64_t expires_ms = -1;      // x-expires; <=0: none
};

class AmqpConnection {
 public:
  AmqpConnection() = default;
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  // Connects, logs in and opens channel 1. Closes any previous connection first.
  Result<bool> Connect(const BrokerUrl& url, const AmqpConnectOptions& options = {});
  // Polite close (channel.close, connection.close: the broker has then processed everything sent)
  // when still connected, waiting at most `timeout_ms` per step, then frees everything.
  void Close(int timeout_ms = 1000);
  bool connected() const { return conn_ != nullptr && !dead_; }

  Result<bool> DeclareExchange(std::string_view name, std::string_view type, bool durable, bool auto_delete,
                               bool passive = false);
  Result<AmqpQueueInfo> DeclareQueue(const AmqpQueueSpec& spec);
  // Passive declare: the queue's counts; an error whose text starts with "404" when it does not exist.
  Result<AmqpQueueInfo> InspectQueue(std::string_view name);
  Result<bool> BindQueue(std::string_view queue, std::string_view exchange, std::string_view routing_key);
  Result<bool> DeleteQueue(std::string_view queue);
  Result<bool> Qos(uint16_t prefetch_count);
  // basic.consume; returns the consumer tag.
  Result<std::string> Consume(std::string_view queue, bool no_ack);
  Result<bool> Cancel(std::string_view consumer_tag);
  Result<bool> Ack(uint64_t delivery_tag, bool multiple);
  Result<bool> Publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
                       const amqp_basic_properties_t& properties);

  // Waits up to `timeout_ms` for one delivery and hands it to `on_message` (valid during the call
  // only). Ok(false) on timeout; an error when the connection or channel failed (then closed).
  Result<bool> Next(int timeout_ms, FunctionRef<void(const amqp_envelope_t&)> on_message);

 private:
  // Turns the last RPC reply into a Result; handles channel/connection close as described above.
  Result<bool> Check(amqp_rpc_reply_t reply, std::string_view what);
  Result<bool> OpenChannel();
  Result<bool> Fail(std::string message);

  amqp_connection_state_t conn_ = nullptr;
  amqp_channel_t channel_ = 1;
  bool dead_ = false;
  std::string where_;  // redacted URL, for messages
};

std::string_view AmqpText(amqp_bytes_t b);
amqp_bytes_t AmqpBytes(std::string_view s);

}  // namespace stalk
