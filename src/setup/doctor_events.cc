// Stalk — Celery monitoring server.
// EventWatch (see doctor_events.h). Celery 5 prefork workers buffer task events and publish them as
// a JSON list in one message, so a body may be one event or a list of them.
#include "setup/doctor_events.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/ingest_stats.h"
#include "control/kombu_message.h"
#include "transport/amqp_event_source.h"
#include "transport/redis_connection.h"
#include "transport/redis_event_source.h"

namespace stalk {
namespace {

void Record(const nlohmann::json& ev, double arrived, EventWatchResult& out) {
  if (!ev.is_object())
    return;
  const std::string type = ev.value("type", "");
  const std::string host = ev.value("hostname", "");
  if (type == "task-sent") {
    ++out.task_sent;
    return;
  }
  if (host.empty())
    return;
  WorkerSeen& w = out.workers[host];
  if (type.rfind("task-", 0) == 0) {
    ++w.task_events;
    return;
  }
  if (type.rfind("worker-", 0) != 0)
    return;
  ++w.worker_events;
  // Skew from worker events only: they are published at once, while prefork workers buffer task
  // events, whose timestamps are then older than their arrival by the buffering time.
  if (ev.contains("timestamp") && ev["timestamp"].is_number()) {
    w.max_skew = std::max(w.max_skew, std::fabs(arrived - ev["timestamp"].get<double>()));
  }
  if (type == "worker-offline")
    w.offline = true;
  if (type == "worker-heartbeat" || type == "worker-online") {
    if (type == "worker-heartbeat")
      ++w.heartbeats;
    w.last_heartbeat = arrived;
    w.offline = false;
    if (ev.contains("freq") && ev["freq"].is_number())
      w.freq = ev["freq"].get<double>();
    if (ev.contains("processed") && ev["processed"].is_number_integer()) {
      const long long p = ev["processed"].get<long long>();
      if (w.processed_first < 0)
        w.processed_first = p;
      w.processed_last = p;
    }
    if (ev.contains("active") && ev["active"].is_number_integer()) {
      w.active_max = std::max(w.active_max, ev["active"].get<long long>());
    }
  }
}

}  // namespace

namespace {

// RabbitMQ: a private event queue (as `stalk serve` declares it) for the window; bodies are the events.
Result<EventWatchResult> WatchAmqpEvents(const BrokerUrl& url, const EventWatchOptions& options) {
  AmqpConnection probe;
  AmqpConnectOptions copts;
  copts.connect_timeout_ms = options.connect_timeout_ms;
  if (auto r = probe.Connect(url, copts); !r)
    return Error{r.error()};
  probe.Close();
  EventWatchResult out;
  std::mutex mu;
  IngestStats stats;
  AmqpEventOptions eo;
  eo.queue_expires_s = 10;
  AmqpEventSource source(url, eo, stats, [&](std::string&& body, std::string_view /*content_type*/, double) {
    const double arrived = UnixSeconds();
    auto doc = nlohmann::json::parse(body, nullptr, false);
    std::lock_guard lock(mu);
    ++out.messages;
    if (doc.is_discarded()) {
      ++out.undecodable;
    } else if (doc.is_array()) {
      for (const auto& ev : doc)
        Record(ev, arrived, out);
    } else {
      Record(doc, arrived, out);
    }
  });
  out.started = UnixSeconds();
  source.Start();
  // The watch window itself: events are collected by the source's thread meanwhile.
  std::this_thread::sleep_for(std::chrono::duration<double>(options.seconds));
  source.Stop();
  std::lock_guard lock(mu);
  out.ended = UnixSeconds();
  return out;
}

}  // namespace

Result<EventWatchResult> WatchEvents(const BrokerUrl& url, const EventWatchOptions& options) {
  if (url.kind == BrokerUrl::Kind::kAmqp) {
    return WatchAmqpEvents(url, options);
  }
  RedisConnection conn;
  if (auto r = conn.Connect(url, options.connect_timeout_ms, false); !r)
    return Error{r.error()};
  const std::string base = options.global_keyprefix + FormatFanoutPrefix(options.fanout_prefix, url.db) + "celeryev";
  const std::string pattern = base + "/*";
  if (auto r = conn.Send({"PSUBSCRIBE", pattern, base}); !r)
    return Error{r.error()};
  EventWatchResult out;
  out.started = UnixSeconds();
  const double deadline = out.started + options.seconds;
  auto sink = [&](std::string_view /*channel*/, std::string_view payload) {
    ++out.messages;
    const double arrived = UnixSeconds();
    auto env = DecodeRedisEnvelope(payload);
    if (!env) {
      ++out.undecodable;
      return;
    }
    auto body = nlohmann::json::parse(env->body, nullptr, false);
    if (body.is_discarded()) {
      ++out.undecodable;
      return;
    }
    if (body.is_array()) {
      for (const auto& ev : body)
        Record(ev, arrived, out);
    } else {
      Record(body, arrived, out);
    }
  };
  for (double now = UnixSeconds(); now < deadline; now = UnixSeconds()) {
    const int wait_ms = std::max(1, static_cast<int>((deadline - now) * 1000));
    auto batch = conn.ReadPubSub(wait_ms, sink);
    if (!batch)
      return Error{batch.error()};
    if (batch->reply && batch->reply->type == REDIS_REPLY_ERROR) {
      return Error{"PSUBSCRIBE failed: " + std::string(batch->reply->str, batch->reply->len)};
    }
  }
  out.ended = UnixSeconds();
  return out;
}

}  // namespace stalk
