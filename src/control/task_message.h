// Stalk — Celery monitoring server.
// Celery's task message, protocol v2 (celery-protocol.md §5.1), and the matching `task-sent` event
// (§2.3, §5.4), built from a TaskSpec. The message mirrors what `Celery.send_task` produces: headers
// {lang, task, id, shadow, eta, expires, group, group_index, retries, timelimit [hard, soft],
// root_id, parent_id, argsrepr, kwargsrepr, origin, ignore_result}, properties {correlation_id,
// reply_to, delivery_mode 2, priority[, expiration]}, body [args, kwargs, embed]. Transport-neutral:
// routing (queue key, priority sub-queue, envelope) is the transport's job.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "control/kombu_message.h"

namespace stalk {

struct TaskSpec {
  std::string name;
  std::string id;                                    // the task id (uuid4 text unless the caller chose one)
  nlohmann::json args = nlohmann::json::array();     // positional arguments
  nlohmann::json kwargs = nlohmann::json::object();  // keyword arguments
  std::string eta;                                   // ISO 8601 with offset; empty: run now
  std::string expires;                               // ISO 8601 with offset; empty: never
  std::optional<double> expires_in_seconds;          // for the `expiration` property when expires is set
  std::string queue = "celery";                      // Celery's task_default_queue
  int priority = 0;                                  // 0-255; on Redis 0 is served first
  std::optional<double> time_limit, soft_time_limit;
  bool ignore_result = false;
  std::string origin;    // sender node name (Stalk's own)
  std::string reply_to;  // the sender's oid (only the rpc:// result backend uses it)
};

KombuMessage EncodeTaskMessage(const TaskSpec& spec);

// Who a client event comes from: Celery's `hostname`, `pid`, `utcoffset` event fields.
struct EventSender {
  std::string hostname;
  int64_t pid = 0;
  int utcoffset = 0;  // Celery's utcoffset(): hours west of UTC
};

// The task-sent event for `spec` (exchange "celeryev", routing key "task.sent"); args/kwargs are the
// repr strings, as Celery sends them.
KombuMessage EncodeTaskSentEvent(const TaskSpec& spec, const EventSender& sender, int64_t clock, double timestamp);

// This process as an event sender: "stalk@<host name>", our pid, the local utcoffset.
EventSender LocalEventSender();

}  // namespace stalk
