// Stalk — Celery monitoring server.
#include "control/amqp_control_transport.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "common/clock.h"
#include "common/log.h"
#include "control/amqp_message.h"

namespace stalk {
namespace {

constexpr const char* kEventExchange = "celeryev";

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Result<bool> DeclarePidbox(AmqpConnection& c) {
  return c.DeclareExchange(kPidboxExchange, "fanout", /*durable=*/false, /*auto_delete=*/false);
}

}  // namespace

AmqpControlTransport::AmqpControlTransport(BrokerUrl url, AmqpControlOptions options)
    : url_(std::move(url)), options_(std::move(options)) {}

AmqpControlTransport::~AmqpControlTransport() = default;

Result<AmqpControlTransport::Conn> AmqpControlTransport::Acquire(
    const std::function<Result<bool>(AmqpConnection&)>& first) {
  Conn pooled;
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      pooled = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (pooled && pooled->connected()) {
    if (first(*pooled)) {
      return pooled;
    }
    // A broker restart kills pooled connections; a channel error means the declare itself is wrong.
    if (pooled->connected()) {
      return Error{"broker refused the declare"};
    }
  }
  auto c = std::make_unique<AmqpConnection>();
  AmqpConnectOptions co;
  co.connect_timeout_ms = options_.connect_timeout_ms;
  co.rpc_timeout_ms = options_.rpc_timeout_ms;
  co.heartbeat_s = 0;  // used in short calls only; a dead one fails its first declare
  co.client_name = "stalk control";
  if (auto r = c->Connect(url_, co); !r) {
    return Error{r.error()};
  }
  if (auto r = first(*c); !r) {
    return Error{r.error()};
  }
  return c;
}

void AmqpControlTransport::Release(Conn conn) {
  if (!conn || !conn->connected()) {
    return;
  }
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.max_idle_connections) {
    idle_.push_back(std::move(conn));
  }
}

Result<std::vector<std::vector<ControlReply>>> AmqpControlTransport::BroadcastMany(
    const std::vector<ControlRequest>& requests, const CollectOptions& options) {
  std::vector<std::vector<ControlReply>> out(requests.size());
  if (requests.empty()) {
    return out;
  }
  const int idle_ms = std::max(1, options.idle_timeout_ms);
  const int total_ms = options.max_total_ms > 0 ? options.max_total_ms : 5 * idle_ms;
  const int64_t deadline = SteadyMs() + total_ms;
  const bool want_reply = std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.reply; });
  const std::string oid = NewUuid4();
  const std::string reply_queue = oid + "." + kPidboxReplyExchange;
  std::vector<std::string> tickets;
  for (size_t i = 0; i < requests.size(); ++i) {
    tickets.push_back(NewUuid4());
  }

  auto conn = Acquire(DeclarePidbox);
  if (!conn) {
    return Error{conn.error()};
  }
  AmqpConnection& c = **conn;
  std::string consumer_tag;
  if (want_reply) {
    AmqpQueueSpec spec;
    spec.name = reply_queue;
    spec.auto_delete = true;
    spec.expires_ms = options_.reply_queue_expires_ms;
    Result<bool> ok = c.DeclareExchange(kPidboxReplyExchange, "direct", false, false);
    if (ok) {
      auto q = c.DeclareQueue(spec);
      ok = q ? c.BindQueue(reply_queue, kPidboxReplyExchange, oid) : Result<bool>(Error{q.error()});
    }
    if (ok) {
      auto tag = c.Consume(reply_queue, /*no_ack=*/true);
      ok = tag ? Result<bool>(true) : Result<bool>(Error{tag.error()});
      if (tag)
        consumer_tag = *tag;
    }
    if (!ok) {
      return Error{"setting up the pidbox reply queue: " + ok.error()};
    }
  }
  const double expires = UnixSeconds() + idle_ms / 1000.0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const KombuMessage m = EncodePidboxRequest(requests[i], tickets[i], oid, ++clock_, expires);
    AmqpProperties props(m);
    if (auto p = c.Publish(kPidboxExchange, "", m.body, props.get()); !p) {
      return Error{p.error()};
    }
  }

  // Per request: how many replies to wait for (-1: until the idle timeout).
  std::vector<int64_t> wanted(requests.size(), 0);
  size_t pending = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ControlRequest& rq = requests[i];
    if (!rq.reply)
      continue;
    wanted[i] = rq.limit > 0 ? rq.limit : (rq.destination.empty() ? -1 : static_cast<int64_t>(rq.destination.size()));
    ++pending;
  }
  auto log = Logger("control");
  std::string failure;
  while (pending > 0) {
    const int64_t left = deadline - SteadyMs();
    if (left <= 0)
      break;
    bool got = false;
    auto r = c.Next(static_cast<int>(std::min<int64_t>(idle_ms, left)), [&](const amqp_envelope_t& env) {
      got = true;
      DecodedEnvelope d;
      d.body = std::string(AmqpText(env.message.body));
      if ((env.message.properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        d.headers = AmqpTableToJson(env.message.properties.headers);
      } else {
        d.headers = nlohmann::json::object();
      }
      d.properties = nlohmann::json::object();
      auto reply = DecodePidboxReply(d);
      if (!reply) {
        log->warn("ignoring a malformed pidbox reply: {}", reply.error());
        return;
      }
      const auto it = std::find(tickets.begin(), tickets.end(), reply->ticket);
      if (it == tickets.end())
        return;  // not ours (a straggler of an earlier call)
      const size_t i = static_cast<size_t>(it - tickets.begin());
      if (!requests[i].reply || wanted[i] == 0)
        return;
      for (auto& one : reply->replies) {
        out[i].push_back(std::move(one));
      }
      if (wanted[i] > 0 && --wanted[i] == 0)
        --pending;
    });
    if (!r) {
      failure = r.error();
      break;
    }
    if (!*r && !got)
      break;  // idle timeout: nobody else is answering
  }
  if (!failure.empty()) {
    return Error{"lost the broker while collecting replies: " + failure};
  }
  if (want_reply && c.connected()) {
    // Cancel first: a queue deleted under its consumer makes the broker send basic.cancel, which the
    // next call on this pooled connection would read. Replies still in flight are dropped.
    if (auto k = c.Cancel(consumer_tag); !k) {
      log->debug("cancelling the reply consumer: {}", k.error());
    }
    if (auto d = c.DeleteQueue(reply_queue); !d) {
      log->debug("deleting {}: {}", reply_queue, d.error());
    }
  }
  Release(std::move(*conn));
  return out;
}

Result<bool> AmqpControlTransport::PublishTask(const std::string& queue, int priority, const KombuMessage& message) {
  auto declare = [&queue](AmqpConnection& c) -> Result<bool> {
    if (c.InspectQueue(queue))
      return true;
    if (!c.connected())
      return Error{"lost the connection"};
    // 404: declare it as Celery declares its default queue (durable, not auto-delete).
    AmqpQueueSpec spec;
    spec.name = queue;
    spec.durable = true;
    auto q = c.DeclareQueue(spec);
    return q ? Result<bool>(true) : Result<bool>(Error{"declaring queue " + queue + ": " + q.error()});
  };
  auto conn = Acquire(declare);
  if (!conn) {
    return Error{conn.error()};
  }
  AmqpProperties props(message, priority > 0 ? priority : -1);
  auto p = (*conn)->Publish("", queue, message.body, props.get());
  if (!p) {
    return p;
  }
  Release(std::move(*conn));
  return true;
}

Result<bool> AmqpControlTransport::PublishEvent(const std::string& routing_key, const KombuMessage& message) {
  auto conn = Acquire([](AmqpConnection& c) { return c.DeclareExchange(kEventExchange, "topic", true, false); });
  if (!conn) {
    return Error{conn.error()};
  }
  AmqpProperties props(message);
  auto p = (*conn)->Publish(kEventExchange, routing_key, message.body, props.get());
  if (!p) {
    return p;
  }
  Release(std::move(*conn));
  return true;
}

}  // namespace stalk
