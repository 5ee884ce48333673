// Stalk — Celery monitoring server.
#include "auth/auth_metrics.h"

#include <string_view>
#include <utility>

#include "metrics/exposition_writer.h"

namespace stalk {

void AppendAuthMetrics(const AuthGuard& guard, uint64_t audit_entries, bool openmetrics, std::string& exposition) {
  const AuthCounters& c = guard.counters();
  ExpositionWriter w(openmetrics, 1024);
  w.Family("stalk_auth_enabled", MetricType::kGauge, "1 when credentials are configured (basic auth or API tokens).");
  w.Open();
  w.Close(uint64_t{guard.Enabled() ? 1u : 0u});
  w.Family("stalk_auth_denied", MetricType::kCounter, "HTTP requests refused by the auth guard, by reason.");
  for (auto [reason, v] :
       {std::pair{"unauthenticated", &c.unauthenticated}, std::pair{"invalid_credentials", &c.invalid_credentials},
        std::pair{"locked_out", &c.locked_out}, std::pair{"forbidden", &c.forbidden},
        std::pair{"cross_site", &c.cross_site}}) {
    w.Open();
    w.Label("reason", reason);
    w.Close(v->load(std::memory_order_relaxed));
  }
  w.Family("stalk_audit_entries", MetricType::kCounter, "Control actions recorded in the audit log.");
  w.Open();
  w.Close(audit_entries);
  w.AppendTo(exposition);
}

}  // namespace stalk
