// Stalk — Celery monitoring server.
#include "transport/amqp_event_source.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace stalk {
namespace {

std::string RandomUuid() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  const uint64_t hi = rng(), lo = rng();
  char buf[37];
  const uint64_t h = (hi & 0xFFFFFFFFFFFF0FFFull) | 0x4000ull;
  const uint64_t l = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(h >> 32),
                static_cast<unsigned>((h >> 16) & 0xFFFF), static_cast<unsigned>(h & 0xFFFF),
                static_cast<unsigned>(l >> 48), static_cast<unsigned long long>(l & 0xFFFFFFFFFFFFull));
  return buf;
}

}  // namespace

AmqpEventSource::AmqpEventSource(BrokerUrl url, AmqpEventOptions options, IngestStats& stats, Sink sink)
    : url_(std::move(url)), options_(std::move(options)), stats_(stats), sink_(std::move(sink)) {}

AmqpEventSource::~AmqpEventSource() { Stop(); }

std::string AmqpEventSource::QueueName() const {
  std::lock_guard lock(name_mu_);
  return queue_name_;
}

void AmqpEventSource::Start() {
  thread_ = std::thread([this] {
    NameThisThread("stalk-amqp");
    Run();
  });
}

void AmqpEventSource::Stop() {
  stop_ = true;
  if (thread_.joinable()) {
    thread_.join();
  }
}

void AmqpEventSource::Run() {
  auto log = Logger("amqp");
  std::mt19937 rng(std::random_device{}());
  int backoff_ms = 100;
  while (!stop_) {
    AmqpConnectOptions co;
    co.connect_timeout_ms = options_.connect_timeout_ms;
    co.heartbeat_s = options_.heartbeat_s;
    co.client_name = "stalk events";
    auto r = conn_.Connect(url_, co);
    if (!r) {
      stats_.connection_failures.fetch_add(1, std::memory_order_relaxed);
      log->warn("{}; retrying in {} ms", r.error(), backoff_ms);
    } else {
      backoff_ms = 100;
      Session();
      conn_.Close();
      stats_.broker_connected = false;
      stats_.last_disconnected_at = UnixSeconds();
    }
    if (stop_) {
      break;
    }
    const int sleep_ms = backoff_ms / 2 + static_cast<int>(rng() % static_cast<unsigned>(backoff_ms / 2 + 1));
    for (int slept = 0; slept < sleep_ms && !stop_; slept += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
  }
  conn_.Close();
}

Result<bool> AmqpEventSource::Setup(const std::string& queue) {
  if (auto e = conn_.DeclareExchange(options_.exchange, "topic", /*durable=*/true, /*auto_delete=*/false); !e) {
    return e;
  }
  AmqpQueueSpec spec;
  spec.name = queue;
  spec.exclusive = true;
  spec.auto_delete = true;
  spec.durable = false;
  spec.message_ttl_ms = options_.queue_ttl_s > 0 ? std::llround(options_.queue_ttl_s * 1000) : -1;
  spec.expires_ms =
      options_.queue_expires_s > 0 ? std::max<int64_t>(1, std::llround(options_.queue_expires_s * 1000)) : -1;
  if (auto q = conn_.DeclareQueue(spec); !q) {
    return Error{q.error()};
  }
  if (auto b = conn_.BindQueue(queue, options_.exchange, "#"); !b) {
    return b;
  }
  if (auto q = conn_.Qos(static_cast<uint16_t>(std::clamp(options_.prefetch, 1, 65535))); !q) {
    return q;
  }
  if (auto c = conn_.Consume(queue, /*no_ack=*/false); !c) {
    return Error{c.error()};
  }
  return true;
}

void AmqpEventSource::Session() {
  auto log = Logger("amqp");
  const std::string queue = options_.queue_prefix + ".stalk." + RandomUuid();
  if (auto s = Setup(queue); !s) {
    log->warn("setting up the event queue on {} failed: {}", url_.Redacted(), s.error());
    stats_.connection_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  {
    std::lock_guard lock(name_mu_);
    queue_name_ = queue;
  }
  stats_.broker_connected = true;
  stats_.last_connected_at = UnixSeconds();
  if (connected_once_) {
    stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
    log->info("reconnected to {} (queue {}); events published while disconnected were not seen", url_.Redacted(),
              queue);
  } else {
    log->info("consuming {} bound to {} (#) on {}", queue, options_.exchange, url_.Redacted());
  }
  connected_once_ = true;

  const uint64_t ack_every = static_cast<uint64_t>(std::max(1, options_.prefetch / 2));
  uint64_t last_tag = 0;
  uint64_t acked_tag = 0;
  while (!stop_) {
    // Short waits when acks are pending, so a pause in the stream acknowledges promptly.
    const int wait_ms = last_tag != acked_tag ? 20 : 500;
    auto r = conn_.Next(wait_ms, [&](const amqp_envelope_t& env) {
      const auto body = AmqpText(env.message.body);
      stats_.messages_received.fetch_add(1, std::memory_order_relaxed);
      stats_.bytes_received.fetch_add(body.size(), std::memory_order_relaxed);
      std::string bytes;
      bytes.reserve(body.size() + 64);  // simdjson's padding: the writer parses in place
      bytes.assign(body);
      std::string_view content_type = "application/json";
      if ((env.message.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) != 0) {
        content_type = AmqpText(env.message.properties.content_type);
      }
      sink_(std::move(bytes), content_type, UnixSeconds());
      last_tag = env.delivery_tag;
    });
    if (!r) {
      if (!stop_) {
        log->warn("lost the event stream from {}: {}", url_.Redacted(), r.error());
      }
      return;
    }
    if (last_tag != acked_tag && (!*r || last_tag - acked_tag >= ack_every)) {
      if (auto a = conn_.Ack(last_tag, /*multiple=*/true); !a) {
        log->warn("ack failed on {}: {}", url_.Redacted(), a.error());
        return;
      }
      acked_tag = last_tag;
    }
  }
}

}  // namespace stalk
