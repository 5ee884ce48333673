// Stalk — Celery monitoring server.
// ControlTransport: what the control layer needs from a broker — broadcast pidbox commands and
// collect the replies, publish task messages, publish events. One implementation per broker
// (redis_control_transport.h, amqp_control_transport.h). Implementations are thread-safe: HTTP pool
// threads call them concurrently, and a call that waits for replies must not hold up the others.
//
// Collection follows Celery's Mailbox._collect: replies are taken until each request has `limit` of
// them, or until none arrives for `idle_timeout_ms` (an idle timeout, not a total one). Stalk adds a
// hard deadline for the whole call (`max_total_ms`), so a stream of stray replies cannot hold a
// request open, and stops early when every worker that received the command has answered.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "control/kombu_message.h"
#include "control/pidbox.h"

namespace stalk {

struct CollectOptions {
  int idle_timeout_ms = 1000;  // --inspect_timeout: give up when no reply came for this long
  int max_total_ms = 0;        // hard deadline of the whole collection; 0: 5 x idle_timeout_ms
};

class ControlTransport {
 public:
  virtual ~ControlTransport() = default;

  // Publishes every request, then collects replies for those with `reply` set (one waiting period
  // for all of them). Result i holds the replies to requests[i], in arrival order; an error means
  // the broker could not be reached or failed mid-way (then nothing is known of the replies).
  virtual Result<std::vector<std::vector<ControlReply>>> BroadcastMany(const std::vector<ControlRequest>& requests,
                                                                       const CollectOptions& options) = 0;

  // Puts a task message on `queue` (priority sub-queue per `priority`, as kombu does).
  virtual Result<bool> PublishTask(const std::string& queue, int priority, const KombuMessage& message) = 0;

  // Publishes an event on Celery's event exchange with `routing_key` (e.g. "task.sent").
  virtual Result<bool> PublishEvent(const std::string& routing_key, const KombuMessage& message) = 0;

  // One request; see BroadcastMany.
  Result<std::vector<ControlReply>> Broadcast(const ControlRequest& request, const CollectOptions& options) {
    auto r = BroadcastMany({request}, options);
    if (!r) {
      return Error{r.error()};
    }
    return std::move((*r)[0]);
  }
};

}  // namespace stalk
