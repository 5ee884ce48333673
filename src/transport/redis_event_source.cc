// Stalk — Celery monitoring server.
#include "transport/redis_event_source.h"

#include <chrono>
#include <random>

#include "common/clock.h"
#include "common/log.h"
#include "common/thread_name.h"

namespace stalk {
namespace {

std::chrono::steady_clock::time_point Mono() { return std::chrono::steady_clock::now(); }

}  // namespace

std::string FormatFanoutPrefix(const std::string& prefix, int db) {
  std::string out = prefix;
  if (const size_t p = out.find("{db}"); p != std::string::npos) {
    out.replace(p, 4, std::to_string(db));
  }
  return out;
}

RedisEventSource::RedisEventSource(BrokerUrl url, RedisEventOptions options, IngestStats& stats, Sink sink)
    : url_(std::move(url)), options_(std::move(options)), stats_(stats), sink_(std::move(sink)) {}

RedisEventSource::~RedisEventSource() { Stop(); }

std::vector<std::string> RedisEventSource::Patterns() const {
  const std::string base =
      options_.global_keyprefix + FormatFanoutPrefix(options_.fanout_prefix, url_.db) + options_.exchange;
  return {base + "/*", base};
}

void RedisEventSource::Start() {
  thread_ = std::thread([this] {
    NameThisThread("stalk-redis");
    Run();
  });
}

void RedisEventSource::Stop() {
  stop_ = true;
  conn_.Interrupt();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void RedisEventSource::Run() {
  auto log = Logger("redis");
  std::mt19937 rng(std::random_device{}());
  int backoff_ms = 100;
  while (!stop_) {
    auto r = conn_.Connect(url_, options_.connect_timeout_ms, /*select_db=*/false);
    if (!r) {
      stats_.connection_failures.fetch_add(1, std::memory_order_relaxed);
      log->warn("{}; retrying in {} ms", r.error(), backoff_ms);
    } else {
      backoff_ms = 100;
      Session();
      stats_.broker_connected = false;
      stats_.last_disconnected_at = UnixSeconds();
    }
    if (stop_) {
      break;
    }
    // Sleep in small steps so Stop() is prompt; jitter spreads a fleet of Stalks reconnecting at once.
    const int sleep_ms = backoff_ms / 2 + static_cast<int>(rng() % static_cast<unsigned>(backoff_ms / 2 + 1));
    for (int slept = 0; slept < sleep_ms && !stop_; slept += 50) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    backoff_ms = std::min(backoff_ms * 2, options_.max_backoff_ms);
  }
}

void RedisEventSource::Session() {
  auto log = Logger("redis");
  const auto patterns = Patterns();
  std::vector<std::string_view> cmd{"PSUBSCRIBE"};
  for (const auto& p : patterns) {
    cmd.emplace_back(p);
  }
  if (auto s = conn_.Send(cmd); !s) {
    log->warn("PSUBSCRIBE failed: {}", s.error());
    return;
  }
  size_t confirmations = 0;
  auto last_data = Mono();
  std::chrono::steady_clock::time_point ping_sent{};
  bool ping_outstanding = false;
  while (!stop_) {
    // Payloads go to the sink straight from the receive buffer (RedisConnection::ReadPubSub); all
    // messages of one read share its receive time.
    double received_at = 0;
    auto r = conn_.ReadPubSub(500, [&](std::string_view, std::string_view payload) {
      stats_.messages_received.fetch_add(1, std::memory_order_relaxed);
      stats_.bytes_received.fetch_add(payload.size(), std::memory_order_relaxed);
      if (received_at == 0) {
        received_at = UnixSeconds();
      }
      // Room for the decoder's SIMD padding (simdjson needs 64 readable bytes past the end), so the
      // writer parses the payload in place instead of copying it.
      std::string bytes;
      bytes.reserve(payload.size() + 64);
      bytes.assign(payload);
      sink_(std::move(bytes), received_at);
    });
    if (!r) {
      if (!stop_) {
        log->warn("lost connection to {}: {}", url_.Redacted(), r.error());
        if (conn_.TakeDiscardedPartial()) {
          // A message cut off mid-frame: never handed on half-read; its bytes go with the connection.
          stats_.partial_messages_discarded.fetch_add(1, std::memory_order_relaxed);
        }
      }
      return;
    }
    const auto now = Mono();
    if (r->messages == 0 && !r->reply) {
      if (!ping_outstanding && now - last_data > std::chrono::milliseconds(options_.idle_ping_ms)) {
        if (!conn_.Send({"PING"})) {
          return;
        }
        ping_outstanding = true;
        ping_sent = now;
      } else if (ping_outstanding && now - ping_sent > std::chrono::milliseconds(options_.ping_timeout_ms)) {
        log->warn("{} did not answer PING for {} ms; reconnecting", url_.Redacted(), options_.ping_timeout_ms);
        conn_.Close();
        return;
      }
      continue;
    }
    last_data = now;
    if (!r->reply) {
      continue;
    }
    redisReply* rep = r->reply.get();
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 || rep->element[0]->type != REDIS_REPLY_STRING) {
      if (rep->type == REDIS_REPLY_ERROR) {
        log->warn("Redis error on the event connection: {}", std::string_view(rep->str, rep->len));
      }
      continue;
    }
    const std::string_view kind(rep->element[0]->str, rep->element[0]->len);
    if (kind == "pmessage") {
      continue;  // malformed (not 4 strings): ReadPubSub delivers every well-formed one
    } else if (kind == "psubscribe") {
      if (++confirmations == patterns.size()) {
        stats_.broker_connected = true;
        stats_.last_connected_at = UnixSeconds();
        if (connected_once_) {
          stats_.reconnects.fetch_add(1, std::memory_order_relaxed);
          log->info("reconnected to {}; events published while disconnected were not seen", url_.Redacted());
        } else {
          log->info("subscribed to {} on {}", patterns.front(), url_.Redacted());
        }
        connected_once_ = true;
      }
    } else if (kind == "pong") {
      ping_outstanding = false;
    }
  }
}

}  // namespace stalk
