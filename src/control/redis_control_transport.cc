// Stalk — Celery monitoring server.
#include "control/redis_control_transport.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/clock.h"
#include "common/log.h"
#include "transport/redis_event_source.h"

namespace stalk {
namespace {

constexpr const char* kReplyQueueSuffix = ".reply.celery.pidbox";
constexpr const char* kReplyBindingKey = "_kombu.binding.reply.celery.pidbox";

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string ReplyText(const redisReply* r) { return r && r->str ? std::string(r->str, r->len) : std::string(); }

}  // namespace

RedisControlTransport::RedisControlTransport(BrokerUrl url, RedisControlOptions options)
    : url_(std::move(url)),
      options_(std::move(options)),
      fanout_(FormatFanoutPrefix(options_.fanout_prefix, url_.db)) {}

RedisControlTransport::~RedisControlTransport() = default;

std::string RedisControlTransport::PidboxChannel() const {
  return options_.global_keyprefix + fanout_ + kPidboxExchange;
}

std::string RedisControlTransport::EventChannel(const std::string& routing_key) const {
  return options_.global_keyprefix + fanout_ + "celeryev/" + routing_key;
}

std::string RedisControlTransport::QueueKey(const std::string& queue, int priority) const {
  // kombu's _q_for_pri: the largest priority step <= priority; step 0 is the bare queue key.
  int step = 0;
  for (int s : options_.priority_steps) {
    if (s <= priority)
      step = std::max(step, s);
  }
  std::string key = options_.global_keyprefix + queue;
  if (step != 0) {
    key += options_.priority_sep + std::to_string(step);
  }
  return key;
}

// ------------------------------------------------------------------ connections

Result<RedisControlTransport::Conn> RedisControlTransport::Acquire(bool& reused) {
  {
    std::lock_guard lock(mu_);
    while (!idle_.empty()) {
      Conn c = std::move(idle_.back());
      idle_.pop_back();
      if (c->connected()) {
        reused = true;
        return c;
      }
    }
  }
  reused = false;
  auto c = std::make_unique<RedisConnection>();
  if (auto r = c->Connect(url_, options_.connect_timeout_ms, /*select_db=*/true); !r) {
    return Error{r.error()};
  }
  return c;
}

Result<RedisControlTransport::Conn> RedisControlTransport::AcquireLive() {
  bool reused = false;
  auto conn = Acquire(reused);
  if (conn && reused) {
    // A pooled connection may have died with a Redis restart: find out with a PING before sending
    // anything, so no command is ever sent twice by a retry.
    auto pong = (*conn)->Command({"PING"}, options_.command_timeout_ms);
    if (!pong) {
      return Acquire(reused);
    }
  }
  return conn;
}

void RedisControlTransport::Release(Conn conn) {
  if (!conn || !conn->connected()) {
    return;
  }
  std::lock_guard lock(mu_);
  if (idle_.size() < options_.max_idle_connections) {
    idle_.push_back(std::move(conn));
  }
}

// ------------------------------------------------------------------ pidbox

Result<bool> RedisControlTransport::Publish(RedisConnection& conn, const std::vector<ControlRequest>& requests,
                                            const std::vector<std::string>& tickets, const std::string& oid,
                                            double expires, std::vector<int64_t>& listeners) {
  const bool want_reply = std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.reply; });
  const std::string sep = options_.priority_sep;
  size_t sent = 0;
  if (want_reply) {
    const std::string member = oid + sep + sep + oid + kReplyQueueSuffix;
    if (auto s = conn.Send({"SADD", options_.global_keyprefix + kReplyBindingKey, member}); !s) {
      return Error{s.error()};
    }
    ++sent;
  }
  const std::string channel = PidboxChannel();
  for (size_t i = 0; i < requests.size(); ++i) {
    const KombuMessage m = EncodePidboxRequest(requests[i], tickets[i], oid, ++clock_, expires);
    const std::string envelope = EncodeRedisEnvelope(m, kPidboxExchange, "");
    if (auto s = conn.Send({"PUBLISH", channel, envelope}); !s) {
      return Error{s.error()};
    }
    ++sent;
  }
  for (size_t k = 0; k < sent; ++k) {
    auto r = conn.ReadReply(options_.command_timeout_ms);
    if (!r || !*r) {
      conn.Close();
      return Error{r ? "Redis did not answer in time" : r.error()};
    }
    if ((*r)->type == REDIS_REPLY_ERROR) {
      return Error{"Redis refused a control command: " + ReplyText(r->get())};
    }
    const size_t request_index = want_reply ? k - 1 : k;
    if ((!want_reply || k > 0) && (*r)->type == REDIS_REPLY_INTEGER) {
      listeners[request_index] = (*r)->integer;
    }
  }
  return true;
}

Result<ReplyPtr> RedisControlTransport::BlockingPop(RedisConnection& conn, const std::string& key, int timeout_ms) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    char timeout[32];
    if (integer_brpop_timeout_) {
      std::snprintf(timeout, sizeof timeout, "%d", std::max(1, (timeout_ms + 999) / 1000));
    } else {
      std::snprintf(timeout, sizeof timeout, "%.3f", std::max(1, timeout_ms) / 1000.0);
    }
    if (auto s = conn.Send({"BRPOP", key, timeout}); !s) {
      return Error{s.error()};
    }
    auto r = conn.ReadReply(timeout_ms + options_.command_timeout_ms);
    if (!r) {
      return Error{r.error()};
    }
    if (!*r) {
      conn.Close();
      return Error{"Redis did not answer BRPOP in time"};
    }
    if ((*r)->type == REDIS_REPLY_ERROR && !integer_brpop_timeout_) {
      // Redis before 6.0 takes whole seconds only ("timeout is not an integer or out of range").
      integer_brpop_timeout_ = true;
      continue;
    }
    return r;
  }
  return Error{"Redis refused BRPOP"};
}

void RedisControlTransport::Cleanup(RedisConnection& conn, const std::string& oid, bool complete, int linger_ms) {
  const std::string sep = options_.priority_sep;
  const std::string queue = oid + kReplyQueueSuffix;
  const std::string key = options_.global_keyprefix + queue;
  std::vector<std::string> del_args{"DEL"};
  if (complete)
    del_args.push_back(key);
  for (int step : options_.priority_steps) {
    if (step != 0)
      del_args.push_back(key + sep + std::to_string(step));
  }
  std::vector<std::string_view> del_views(del_args.begin(), del_args.end());
  const std::string member = oid + sep + sep + queue;
  const std::string linger = std::to_string(linger_ms);
  // Unbinding first makes kombu drop later replies, but a worker that looked the binding up just
  // before still LPUSHes; when replies are missing, such a straggler is likely, so the list is given
  // a TTL (a placeholder element makes it exist, and LPUSH keeps a TTL) instead of being deleted.
  bool sent = conn.Send({"SREM", options_.global_keyprefix + kReplyBindingKey, member}) && conn.Send(del_views);
  int replies = 2;
  if (sent && !complete) {
    sent = conn.Send({"LPUSH", key, ""}) && conn.Send({"PEXPIRE", key, linger});
    replies += 2;
  }
  if (!sent) {
    conn.Close();
    return;
  }
  for (int k = 0; k < replies; ++k) {
    auto r = conn.ReadReply(options_.command_timeout_ms);
    if (!r || !*r) {
      conn.Close();
      return;
    }
  }
}

Result<std::vector<std::vector<ControlReply>>> RedisControlTransport::BroadcastMany(
    const std::vector<ControlRequest>& requests, const CollectOptions& options) {
  std::vector<std::vector<ControlReply>> out(requests.size());
  if (requests.empty()) {
    return out;
  }
  const int idle_ms = std::max(1, options.idle_timeout_ms);
  const int total_ms = options.max_total_ms > 0 ? options.max_total_ms : 5 * idle_ms;
  const int64_t deadline = SteadyMs() + total_ms;
  const std::string oid = NewUuid4();
  std::vector<std::string> tickets;
  for (size_t i = 0; i < requests.size(); ++i) {
    tickets.push_back(NewUuid4());
  }
  std::vector<int64_t> listeners(requests.size(), -1);

  auto conn = AcquireLive();
  if (!conn) {
    return Error{conn.error()};
  }
  RedisConnection& c = **conn;
  if (auto p = Publish(c, requests, tickets, oid, UnixSeconds() + idle_ms / 1000.0, listeners); !p) {
    c.Close();
    return Error{p.error()};
  }

  // Per request: how many replies to wait for (-1: until the idle timeout).
  std::vector<int64_t> wanted(requests.size(), 0);
  size_t pending = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    const ControlRequest& rq = requests[i];
    if (!rq.reply)
      continue;
    int64_t limit =
        rq.limit > 0 ? rq.limit : (rq.destination.empty() ? -1 : static_cast<int64_t>(rq.destination.size()));
    if (options_.stop_when_all_listeners_replied && listeners[i] >= 0) {
      limit = limit < 0 ? listeners[i] : std::min(limit, listeners[i]);
    }
    wanted[i] = limit;
    if (limit != 0)
      ++pending;
  }

  const std::string reply_key = options_.global_keyprefix + oid + kReplyQueueSuffix;
  auto log = Logger("control");
  std::string failure;
  while (pending > 0) {
    const int64_t left = deadline - SteadyMs();
    if (left <= 0)
      break;
    auto r = BlockingPop(c, reply_key, static_cast<int>(std::min<int64_t>(idle_ms, left)));
    if (!r) {
      failure = r.error();
      break;
    }
    const redisReply* rep = r->get();
    if (rep->type == REDIS_REPLY_NIL)
      break;  // idle timeout: nobody else is answering
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
      failure = "unexpected BRPOP reply";
      break;
    }
    auto env = DecodeRedisEnvelope(std::string_view(rep->element[1]->str, rep->element[1]->len));
    auto reply = env ? DecodePidboxReply(*env) : Result<PidboxReply>(Error{env.error()});
    if (!reply) {
      log->warn("ignoring a malformed pidbox reply: {}", reply.error());
      continue;
    }
    const auto it = std::find(tickets.begin(), tickets.end(), reply->ticket);
    if (it == tickets.end())
      continue;  // not ours (Celery stashes these as "unclaimed")
    const size_t i = static_cast<size_t>(it - tickets.begin());
    if (!requests[i].reply || wanted[i] == 0)
      continue;
    for (auto& one : reply->replies) {
      out[i].push_back(std::move(one));
    }
    if (wanted[i] > 0 && --wanted[i] == 0)
      --pending;
  }
  if (c.connected() && std::any_of(requests.begin(), requests.end(), [](const auto& r) { return r.reply; })) {
    Cleanup(c, oid, /*complete=*/pending == 0, /*linger_ms=*/2 * idle_ms + 2000);
  }
  if (!failure.empty()) {
    c.Close();
    bool reused = false;
    if (auto fresh = Acquire(reused)) {  // best effort: do not leave the binding behind
      Cleanup(**fresh, oid, /*complete=*/false, 2 * idle_ms + 2000);
      Release(std::move(*fresh));
    }
    return Error{"lost the broker while collecting replies: " + failure};
  }
  Release(std::move(*conn));
  return out;
}

// ------------------------------------------------------------------ tasks and events

Result<bool> RedisControlTransport::PublishTask(const std::string& queue, int priority, const KombuMessage& message) {
  const std::string envelope = EncodeRedisEnvelope(message, "", queue);
  return RunOnce({"LPUSH", QueueKey(queue, priority), envelope});
}

Result<bool> RedisControlTransport::PublishEvent(const std::string& routing_key, const KombuMessage& message) {
  const std::string envelope = EncodeRedisEnvelope(message, "celeryev", routing_key);
  return RunOnce({"PUBLISH", EventChannel(routing_key), envelope});
}

Result<bool> RedisControlTransport::RunOnce(const std::vector<std::string_view>& args) {
  auto conn = AcquireLive();
  if (!conn) {
    return Error{conn.error()};
  }
  auto r = (*conn)->Command(args, options_.command_timeout_ms);
  if (!r) {
    return Error{r.error()};
  }
  if ((*r)->type == REDIS_REPLY_ERROR) {
    return Error{"Redis refused " + std::string(args[0]) + ": " + ReplyText(r->get())};
  }
  Release(std::move(*conn));
  return true;
}

}  // namespace stalk
