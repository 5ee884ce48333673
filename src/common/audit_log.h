// Stalk — Celery monitoring server.
// AuditLog: who did what to the cluster, when, to which target, with what result. Control actions
// (shutdown, pool size, revoke, send task...) are recorded here by the control layer; the acting
// principal comes from the request guard through a thread-local AuditActor (a request is handled on
// one thread from the guard to the handler). Keeps the most recent entries in memory for the API and
// hands each entry to a sink (the store writes them durably). Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace stalk {

struct AuditEntry {
  double at = 0;       // wall clock, seconds
  std::string actor;   // user name, "token:<label>", or "-" with no auth configured
  std::string role;    // viewer/operator/admin, or "open"
  std::string remote;  // client address
  std::string action;  // e.g. "worker.shutdown", "task.revoke"
  std::string target;  // worker hostname, task id, task name
  std::string params;  // JSON text of the arguments
  std::string result;  // ok, not_found, failed, timeout, ...
  std::string message;
};

struct AuditActor {
  std::string name = "-";
  std::string role = "open";
  std::string remote;
};

// The principal of the request being handled on this thread (set by the auth guard).
void SetAuditActor(AuditActor actor);
const AuditActor& CurrentAuditActor();

class AuditLog {
 public:
  explicit AuditLog(size_t capacity = 1000) : capacity_(capacity) {}

  // Fills `actor`/`role`/`remote` from CurrentAuditActor() when empty, keeps it, calls the sink.
  void Record(AuditEntry entry);
  // Newest first, at most `limit`.
  std::vector<AuditEntry> Recent(size_t limit) const;
  void SetSink(std::function<void(const AuditEntry&)> sink);
  uint64_t recorded() const;

 private:
  size_t capacity_;
  mutable std::mutex mu_;
  std::deque<AuditEntry> recent_;
  std::function<void(const AuditEntry&)> sink_;
  uint64_t recorded_ = 0;
};

}  // namespace stalk
