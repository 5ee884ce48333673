// Stalk — Celery monitoring server.
// Alerting: what `stalk serve` owns for alerts — the rule engine and its notifier (when an alerts
// config is given) and the Sentry forwarder (when SENTRY_DSN is set) — built, attached to the state,
// started and stopped as one. Either half may be absent; with neither, Create returns null.
#pragma once

#include <memory>
#include <string>

#include "alerts/alert_engine.h"
#include "alerts/alert_groups.h"
#include "alerts/notifier.h"
#include "alerts/sentry.h"

namespace stalk {

class ClusterState;

struct AlertingSetup {
  std::string config_path;         // --alerts_config; empty: no rules
  std::string sentry_dsn;          // SENTRY_DSN (a secret: never logged)
  std::string sentry_environment;  // SENTRY_ENVIRONMENT
  double sentry_max_per_minute = 60;
  std::string generator_url;  // link sent to Alertmanager (Stalk's address)
};

class Alerting {
 public:
  // Errors name the file/line or the variable, never a secret.
  static Result<std::unique_ptr<Alerting>> Create(const AlertingSetup& setup, AlertSources sources);
  ~Alerting();

  // Registers the listeners; call with the write lock held, before ingestion starts.
  void Attach(ClusterState& state);
  void Start();
  void Stop();
  // Null when no alerts config was given.
  AlertEngine* engine() { return engine_.get(); }
  // Appends stalk_alerts_firing, the notifier's and Sentry's families (Prometheus text, no # EOF).
  void RenderMetrics(std::string& out, bool openmetrics) const;

 private:
  Alerting() = default;
  std::unique_ptr<Notifier> notifier_;
  AlertGroups groups_;  // evaluator thread only
  std::unique_ptr<AlertEngine> engine_;
  std::unique_ptr<SentryForwarder> sentry_;
};

}  // namespace stalk
