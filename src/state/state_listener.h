// Stalk — Celery monitoring server.
// StateListener: how layers below state (metrics, store, alerts) learn what changed, synchronously on
// the ingest thread while the state lock is held. Implementations must be quick and must not call
// back into ClusterState's mutating methods.
#pragma once

#include "protocol/event.h"
#include "state/task.h"

namespace stalk {

class ClusterState;

class StateListener {
 public:
  virtual ~StateListener() = default;
  // After a task event was applied; `previous` is the state before it.
  virtual void OnTaskEvent(const ClusterState& /*state*/, const Task& /*task*/, const Event& /*ev*/,
                           TaskState /*previous*/) {}
  virtual void OnWorkerEvent(const ClusterState& /*state*/, const Worker& /*worker*/, const Event& /*ev*/) {}
  // A worker stopped being alive (offline event or heartbeat expiry).
  virtual void OnWorkerOffline(const ClusterState& /*state*/, const Worker& /*worker*/, size_t /*lost*/) {}
  virtual void OnTaskEvicted(const ClusterState& /*state*/, const Task& /*task*/) {}
  // An event that is neither a task nor a worker event (an application's own, e.g. "order-paid").
  virtual void OnOtherEvent(const ClusterState& /*state*/, const Event& /*ev*/) {}
};

}  // namespace stalk
