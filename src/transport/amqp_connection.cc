// Stalk — Celery monitoring server.
#include "transport/amqp_connection.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <array>
#include <cstdlib>
#include <filesystem>

namespace stalk {
namespace {

timeval Tv(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

std::string MethodText(const amqp_rpc_reply_t& r) {
  if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
    return std::to_string(m->reply_code) + " " + std::string(AmqpText(m->reply_text));
  }
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
    return std::to_string(m->reply_code) + " " + std::string(AmqpText(m->reply_text));
  }
  return "unexpected method " + std::to_string(r.reply.id);
}

// x-message-ttl / x-expires as a (static-lifetime during the call) argument table.
struct QueueArgs {
  std::array<amqp_table_entry_t, 2> entries{};
  amqp_table_t table{0, nullptr};
  QueueArgs(int64_t ttl_ms, int64_t expires_ms) {
    int n = 0;
    if (ttl_ms >= 0) {
      entries[n].key = amqp_cstring_bytes("x-message-ttl");
      entries[n].value.kind = AMQP_FIELD_KIND_I64;
      entries[n].value.value.i64 = ttl_ms;
      ++n;
    }
    if (expires_ms > 0) {
      entries[n].key = amqp_cstring_bytes("x-expires");
      entries[n].value.kind = AMQP_FIELD_KIND_I64;
      entries[n].value.value.i64 = expires_ms;
      ++n;
    }
    table.num_entries = n;
    table.entries = n > 0 ? entries.data() : nullptr;
  }
};

}  // namespace

std::string_view AmqpText(amqp_bytes_t b) {
  return b.len == 0 ? std::string_view() : std::string_view(static_cast<const char*>(b.bytes), b.len);
}

amqp_bytes_t AmqpBytes(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

AmqpConnection::~AmqpConnection() { Close(); }

Result<bool> AmqpConnection::Fail(std::string message) {
  dead_ = true;
  return Error{where_ + ": " + message};
}

void AmqpConnection::Close(int timeout_ms) {
  if (conn_ == nullptr) {
    return;
  }
  if (!dead_) {
    // Best effort; a short timeout so a frozen broker does not hold up shutdown.
    timeval tv = Tv(timeout_ms);
    amqp_set_rpc_timeout(conn_, &tv);
    amqp_channel_close(conn_, channel_, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(conn_);
  conn_ = nullptr;
  dead_ = false;
}

Result<bool> AmqpConnection::Connect(const BrokerUrl& url, const AmqpConnectOptions& options) {
  Close();
  where_ = url.Redacted();
  conn_ = amqp_new_connection();
  if (conn_ == nullptr) {
    return Fail("out of memory");
  }
  amqp_socket_t* socket = nullptr;
  if (url.tls) {
    socket = amqp_ssl_socket_new(conn_);
    if (socket != nullptr) {
      amqp_ssl_socket_set_verify_peer(socket, 1);
      amqp_ssl_socket_set_verify_hostname(socket, 1);
      // rabbitmq-c 0.11 trusts nothing by default: use the system bundle (SSL_CERT_FILE overrides).
      const char* env = std::getenv("SSL_CERT_FILE");
      const std::string bundle = env != nullptr ? env : "/etc/ssl/certs/ca-certificates.crt";
      std::error_code ec;
      if (std::filesystem::exists(bundle, ec) && amqp_ssl_socket_set_cacert(socket, bundle.c_str()) != AMQP_STATUS_OK) {
        return Fail("cannot load CA bundle " + bundle);
      }
    }
  } else {
    socket = amqp_tcp_socket_new(conn_);
  }
  if (socket == nullptr) {
    return Fail("cannot create socket");
  }
  timeval ctv = Tv(options.connect_timeout_ms);
  if (int rc = amqp_socket_open_noblock(socket, url.host.c_str(), url.port, &ctv); rc != AMQP_STATUS_OK) {
    // rabbitmq-c does not keep the connect errno: "socket error" here is usually connection refused.
    return Fail(std::string("cannot connect (is RabbitMQ listening there?): ") + amqp_error_string2(rc));
  }
  timeval htv = Tv(options.rpc_timeout_ms);
  amqp_set_handshake_timeout(conn_, &htv);
  amqp_set_rpc_timeout(conn_, &htv);

  amqp_table_entry_t props[1];
  props[0].key = amqp_cstring_bytes("connection_name");
  props[0].value.kind = AMQP_FIELD_KIND_UTF8;
  props[0].value.value.bytes = AmqpBytes(options.client_name);
  amqp_table_t client_props{1, props};
  auto r =
      amqp_login_with_properties(conn_, url.vhost.c_str(), 0, options.frame_max, options.heartbeat_s, &client_props,
                                 AMQP_SASL_METHOD_PLAIN, url.username.c_str(), url.password.c_str());
  if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
    return Fail("login refused: " + MethodText(r));
  }
  if (r.reply_type != AMQP_RESPONSE_NORMAL) {
    // RabbitMQ closes the socket on bad credentials or an unknown vhost before replying.
    return Fail(std::string("login failed (wrong user/password or vhost?): ") +
                (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error) : "no reply"));
  }
  return OpenChannel();
}

Result<bool> AmqpConnection::OpenChannel() {
  amqp_channel_open(conn_, channel_);
  return Check(amqp_get_rpc_reply(conn_), "channel.open");
}

Result<bool> AmqpConnection::Check(amqp_rpc_reply_t r, std::string_view what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return true;
    case AMQP_RESPONSE_NONE:
      return Fail(std::string(what) + ": no reply");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return Fail(std::string(what) + ": " + amqp_error_string2(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      break;
  }
  const std::string text = MethodText(r);
  if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    amqp_channel_close_ok_t ok{};
    if (amqp_send_method(conn_, channel_, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
      return Fail(std::string(what) + ": " + text);
    }
    // A fresh channel number: some brokers need a moment before a closed one can be reused.
    channel_ = static_cast<amqp_channel_t>(channel_ % 60000 + 1);
    if (auto o = OpenChannel(); !o) {
      return Error{o.error()};
    }
    return Error{text};  // the channel works again; only this call failed
  }
  if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t ok{};
    amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
  }
  return Fail(std::string(what) + ": " + text);
}

Result<bool> AmqpConnection::DeclareExchange(std::string_view name, std::string_view type, bool durable,
                                             bool auto_delete, bool passive) {
  if (!connected())
    return Error{"not connected"};
  amqp_exchange_declare(conn_, channel_, AmqpBytes(name), AmqpBytes(type), passive, durable, auto_delete, 0,
                        amqp_empty_table);
  auto c = Check(amqp_get_rpc_reply(conn_), "exchange.declare");
  if (!c)
    return Error{"exchange.declare " + std::string(name) + ": " + c.error()};
  return true;
}

Result<AmqpQueueInfo> AmqpConnection::DeclareQueue(const AmqpQueueSpec& spec) {
  if (!connected())
    return Error{"not connected"};
  QueueArgs args(spec.message_ttl_ms, spec.expires_ms);
  auto* ok = amqp_queue_declare(conn_, channel_, AmqpBytes(spec.name), spec.passive, spec.durable, spec.exclusive,
                                spec.auto_delete, args.table);
  auto c = Check(amqp_get_rpc_reply(conn_), "queue.declare");
  if (!c)
    return Error{c.error()};
  AmqpQueueInfo info;
  if (ok != nullptr) {
    info.name = std::string(AmqpText(ok->queue));
    info.messages = ok->message_count;
    info.consumers = ok->consumer_count;
  }
  return info;
}

Result<AmqpQueueInfo> AmqpConnection::InspectQueue(std::string_view name) {
  AmqpQueueSpec spec;
  spec.name = std::string(name);
  spec.passive = true;
  return DeclareQueue(spec);
}

Result<bool> AmqpConnection::BindQueue(std::string_view queue, std::string_view exchange, std::string_view key) {
  if (!connected())
    return Error{"not connected"};
  amqp_queue_bind(conn_, channel_, AmqpBytes(queue), AmqpBytes(exchange), AmqpBytes(key), amqp_empty_table);
  return Check(amqp_get_rpc_reply(conn_), "queue.bind");
}

Result<bool> AmqpConnection::DeleteQueue(std::string_view queue) {
  if (!connected())
    return Error{"not connected"};
  amqp_queue_delete(conn_, channel_, AmqpBytes(queue), 0, 0);
  return Check(amqp_get_rpc_reply(conn_), "queue.delete");
}

Result<bool> AmqpConnection::Qos(uint16_t prefetch_count) {
  if (!connected())
    return Error{"not connected"};
  amqp_basic_qos(conn_, channel_, 0, prefetch_count, 0);
  return Check(amqp_get_rpc_reply(conn_), "basic.qos");
}

Result<std::string> AmqpConnection::Consume(std::string_view queue, bool no_ack) {
  if (!connected())
    return Error{"not connected"};
  auto* ok = amqp_basic_consume(conn_, channel_, AmqpBytes(queue), amqp_empty_bytes, 0, no_ack, 0, amqp_empty_table);
  auto c = Check(amqp_get_rpc_reply(conn_), "basic.consume");
  if (!c)
    return Error{c.error()};
  return ok != nullptr ? std::string(AmqpText(ok->consumer_tag)) : std::string();
}

Result<bool> AmqpConnection::Cancel(std::string_view consumer_tag) {
  if (!connected())
    return Error{"not connected"};
  amqp_basic_cancel(conn_, channel_, AmqpBytes(consumer_tag));
  return Check(amqp_get_rpc_reply(conn_), "basic.cancel");
}

Result<bool> AmqpConnection::Ack(uint64_t delivery_tag, bool multiple) {
  if (!connected())
    return Error{"not connected"};
  if (int rc = amqp_basic_ack(conn_, channel_, delivery_tag, multiple); rc != AMQP_STATUS_OK) {
    return Fail(std::string("basic.ack: ") + amqp_error_string2(rc));
  }
  return true;
}

Result<bool> AmqpConnection::Publish(std::string_view exchange, std::string_view routing_key, std::string_view body,
                                     const amqp_basic_properties_t& properties) {
  if (!connected())
    return Error{"not connected"};
  if (int rc = amqp_basic_publish(conn_, channel_, AmqpBytes(exchange), AmqpBytes(routing_key), 0, 0, &properties,
                                  AmqpBytes(body));
      rc != AMQP_STATUS_OK) {
    return Fail(std::string("basic.publish: ") + amqp_error_string2(rc));
  }
  return true;
}

Result<bool> AmqpConnection::Next(int timeout_ms, FunctionRef<void(const amqp_envelope_t&)> on_message) {
  if (!connected())
    return Error{"not connected"};
  amqp_maybe_release_buffers(conn_);
  amqp_envelope_t envelope;
  timeval tv = Tv(timeout_ms);
  amqp_rpc_reply_t r = amqp_consume_message(conn_, &envelope, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_NORMAL) {
    on_message(envelope);
    amqp_destroy_envelope(&envelope);
    return true;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
    return false;
  }
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
    // Something other than a delivery: channel/connection close, or a stray method.
    amqp_frame_t frame;
    timeval ftv = Tv(timeout_ms);
    if (int rc = amqp_simple_wait_frame_noblock(conn_, &frame, &ftv); rc != AMQP_STATUS_OK) {
      if (rc == AMQP_STATUS_TIMEOUT)
        return false;
      return Fail(std::string("reading a frame: ") + amqp_error_string2(rc));
    }
    if (frame.frame_type == AMQP_FRAME_METHOD) {
      amqp_rpc_reply_t m{};
      m.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
      m.reply = frame.payload.method;
      if (m.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto c = Check(m, "consume");
        return Error{"channel closed by the broker: " + (c ? std::string() : c.error())};
      }
      if (m.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto c = Check(m, "consume");
        return Error{c ? std::string("connection closed") : c.error()};
      }
      // basic.cancel (queue deleted) and the like: the consumer is gone.
      if (m.reply.id == AMQP_BASIC_CANCEL_METHOD) {
        return Fail("the broker cancelled the consumer (queue deleted?)");
      }
    }
    return false;
  }
  return Check(r, "consume");
}

}  // namespace stalk
