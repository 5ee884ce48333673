// Stalk — Celery monitoring server.
#include "common/audit_log.h"

#include <utility>

namespace stalk {
namespace {
thread_local AuditActor current_actor;
}  // namespace

void SetAuditActor(AuditActor actor) { current_actor = std::move(actor); }

const AuditActor& CurrentAuditActor() { return current_actor; }

void AuditLog::Record(AuditEntry entry) {
  if (entry.actor.empty()) {
    const AuditActor& a = CurrentAuditActor();
    entry.actor = a.name;
    entry.role = a.role;
    entry.remote = a.remote;
  }
  std::function<void(const AuditEntry&)> sink;
  {
    std::lock_guard lock(mu_);
    ++recorded_;
    recent_.push_front(entry);
    if (recent_.size() > capacity_) {
      recent_.pop_back();
    }
    sink = sink_;
  }
  if (sink) {
    sink(entry);  // outside the lock: the sink may take its own
  }
}

std::vector<AuditEntry> AuditLog::Recent(size_t limit) const {
  std::lock_guard lock(mu_);
  const size_t n = std::min(limit, recent_.size());
  return {recent_.begin(), recent_.begin() + static_cast<std::ptrdiff_t>(n)};
}

void AuditLog::SetSink(std::function<void(const AuditEntry&)> sink) {
  std::lock_guard lock(mu_);
  sink_ = std::move(sink);
}

uint64_t AuditLog::recorded() const {
  std::lock_guard lock(mu_);
  return recorded_;
}

}  // namespace stalk
