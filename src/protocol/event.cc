// Stalk — Celery monitoring server.
#include "protocol/event.h"

namespace stalk {

EventKind ClassifyEventType(std::string_view type) {
  if (type.starts_with("task-")) {
    const std::string_view s = type.substr(5);
    if (s == "sent")
      return EventKind::kTaskSent;
    if (s == "received")
      return EventKind::kTaskReceived;
    if (s == "started")
      return EventKind::kTaskStarted;
    if (s == "succeeded")
      return EventKind::kTaskSucceeded;
    if (s == "failed")
      return EventKind::kTaskFailed;
    if (s == "retried")
      return EventKind::kTaskRetried;
    if (s == "revoked")
      return EventKind::kTaskRevoked;
    if (s == "rejected")
      return EventKind::kTaskRejected;
    return EventKind::kTaskCustom;
  }
  if (type.starts_with("worker-")) {
    const std::string_view s = type.substr(7);
    if (s == "heartbeat")
      return EventKind::kWorkerHeartbeat;
    if (s == "online")
      return EventKind::kWorkerOnline;
    if (s == "offline")
      return EventKind::kWorkerOffline;
    return EventKind::kWorkerCustom;
  }
  return EventKind::kOther;
}

bool IsTaskEvent(EventKind k) { return k <= EventKind::kTaskCustom; }
bool IsWorkerEvent(EventKind k) { return k >= EventKind::kWorkerOnline && k <= EventKind::kWorkerCustom; }

}  // namespace stalk
