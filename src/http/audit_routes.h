// Stalk — Celery monitoring server.
// GET /api/admin/audit?limit=N: the audit log of control actions (who, what, when, target, result),
// newest first — this run's entries from memory, then older ones from the store when history is on
// (it survives restarts and is shared between instances on PostgreSQL). Admin role (/api/admin/).
#pragma once

#include <functional>
#include <vector>

#include "common/audit_log.h"
#include "common/result.h"
#include "http/router.h"

namespace stalk {

struct AuditApi {
  AuditLog* memory = nullptr;  // always set
  // Set when a store is configured; an error falls back to memory (and says so in the answer).
  std::function<Result<std::vector<AuditEntry>>(size_t limit)> stored;
};

void RegisterAuditApi(Router& router, const AuditApi& api);

}  // namespace stalk
