// Stalk — Celery monitoring server.
// RedisControlTransport: ControlTransport over kombu's Redis transport (celery-protocol.md §3.5, §5.2):
//  - commands: PUBLISH <gkp><fanout prefix>celery.pidbox <envelope>; the reply count of PUBLISH is
//    the number of workers listening, which caps how many replies can come;
//  - replies: a fresh oid per call; SADD <gkp>_kombu.binding.reply.celery.pidbox
//    "<oid>\x06\x16\x06\x16<oid>.reply.celery.pidbox" before publishing (without it a worker drops
//    its reply), BRPOP <gkp><oid>.reply.celery.pidbox, then SREM the member and DEL the list and its
//    priority variants (as kombu's queue_delete) — or, when replies are missing, let the list expire
//    a few seconds later, so a straggler's reply cannot leave it behind;
//  - tasks: LPUSH <gkp><queue>[\x06\x16<step>] with delivery_info {exchange "", routing_key queue};
//  - events: PUBLISH <gkp><fanout prefix>celeryev/<routing key>.
// Connections: a small pool of RedisConnection (one per concurrent call, so one call's BRPOP never
// waits behind another's), created and reconnected on demand; a pooled connection is checked with
// PING before use, so a Redis restart costs no call and no command is ever sent twice.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/control_transport.h"
#include "transport/broker_url.h"
#include "transport/redis_connection.h"

namespace stalk {

struct RedisControlOptions {
  std::string global_keyprefix;                           // kombu's global_keyprefix
  std::string fanout_prefix = "/{db}.";                   // kombu's fanout_prefix ("" when False)
  std::string priority_sep = std::string("\x06\x16", 2);  // kombu's sep
  std::vector<int> priority_steps{0, 3, 6, 9};            // kombu's priority_steps
  int connect_timeout_ms = 3000;
  int command_timeout_ms = 3000;    // non-blocking commands (SADD, PUBLISH, LPUSH...)
  size_t max_idle_connections = 4;  // pooled connections kept open between calls
  // Stop collecting once as many replies came as PUBLISH reported listeners (workers). Off only for
  // tests that want Celery's plain idle-timeout behaviour.
  bool stop_when_all_listeners_replied = true;
};

class RedisControlTransport : public ControlTransport {
 public:
  RedisControlTransport(BrokerUrl url, RedisControlOptions options);
  ~RedisControlTransport() override;

  Result<std::vector<std::vector<ControlReply>>> BroadcastMany(const std::vector<ControlRequest>& requests,
                                                               const CollectOptions& options) override;
  Result<bool> PublishTask(const std::string& queue, int priority, const KombuMessage& message) override;
  Result<bool> PublishEvent(const std::string& routing_key, const KombuMessage& message) override;

  // Key names, exposed for tests.
  std::string PidboxChannel() const;
  std::string EventChannel(const std::string& routing_key) const;
  std::string QueueKey(const std::string& queue, int priority) const;

 private:
  using Conn = std::unique_ptr<RedisConnection>;
  Result<Conn> Acquire(bool& reused);
  // A pooled connection that answers PING, or a new one.
  Result<Conn> AcquireLive();
  // One command on a live connection; an error reply is an error.
  Result<bool> RunOnce(const std::vector<std::string_view>& args);
  void Release(Conn conn);
  // Runs the publish phase (SADD + PUBLISHes) on `conn`; fills listeners per request.
  Result<bool> Publish(RedisConnection& conn, const std::vector<ControlRequest>& requests,
                       const std::vector<std::string>& tickets, const std::string& oid, double expires,
                       std::vector<int64_t>& listeners);
  // Unbinds and removes the reply queue; `complete`: every expected reply came (DEL), else the
  // list is left to expire after `linger_ms`, catching a straggler's late reply.
  void Cleanup(RedisConnection& conn, const std::string& oid, bool complete, int linger_ms);
  Result<ReplyPtr> BlockingPop(RedisConnection& conn, const std::string& key, int timeout_ms);

  BrokerUrl url_;
  RedisControlOptions options_;
  std::string fanout_;  // formatted fanout prefix
  std::mutex mu_;
  std::vector<Conn> idle_;
  std::atomic<int64_t> clock_{0};
  std::atomic<bool> integer_brpop_timeout_{false};  // Redis < 6 wants whole seconds
};

}  // namespace stalk
