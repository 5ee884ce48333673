// Stalk — Celery monitoring server.
// Auth's families in /metrics: refused requests by reason (stalk_auth_denied_total), whether auth is
// on (stalk_auth_enabled), and audit-log entries recorded (stalk_audit_entries_total).
#pragma once

#include <cstdint>
#include <string>

#include "auth/auth_guard.h"

namespace stalk {

// Appends to an exposition already rendered (before OpenMetrics' "# EOF").
void AppendAuthMetrics(const AuthGuard& guard, uint64_t audit_entries, bool openmetrics, std::string& exposition);

}  // namespace stalk
