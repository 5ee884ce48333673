// Stalk — Celery monitoring server.
// `stalk rules export`: the rules file rewritten as Prometheus alerting rules over Stalk's metrics, for
// teams that alert through Prometheus + Alertmanager instead of Stalk's own evaluator. Each kind maps
// to the nearest PromQL (see README "Alerting"); where Prometheus cannot say the same thing (per-worker
// missed-heartbeat counts, the exact maximum runtime) the expression is the documented approximation.
#pragma once

#include <string>

#include "alerts/alert_config.h"

namespace stalk {

// The PromQL expression for one rule.
std::string PromQlFor(const RuleConfig& r);
// A complete rules file (groups: [{name: stalk, rules: [...]}]) accepted by `promtool check rules`.
std::string PrometheusRulesYaml(const AlertConfig& config);

}  // namespace stalk
