// Stalk — Celery monitoring server.
#include "alerts/alerting.h"

#include <cstdlib>

#include "common/log.h"
#include "state/cluster_state.h"

namespace stalk {

Result<std::unique_ptr<Alerting>> Alerting::Create(const AlertingSetup& setup, AlertSources sources) {
  std::unique_ptr<Alerting> a(new Alerting());
  auto log = Logger("alerts");
  if (!setup.config_path.empty()) {
    auto cfg = LoadAlertConfig(setup.config_path);
    if (!cfg)
      return Error{"--alerts_config: " + cfg.error()};
    for (const auto& c : cfg->channels) {
      const std::string& env = c.type == ChannelType::kPagerDuty ? c.routing_key_env : c.url_env;
      if (!std::getenv(env.c_str())) {
        log->warn("alert channel {}: environment variable {} is not set; its deliveries will fail", c.name, env);
      }
    }
    NotifierOptions no;
    no.generator_url = setup.generator_url;
    a->notifier_ = std::make_unique<Notifier>(cfg->channels, no);
    Notifier* n = a->notifier_.get();
    log->info("alerting: {} rules, {} channels from {}", cfg->rules.size(), cfg->channels.size(), setup.config_path);
    // Engine -> groups (same thread: the evaluator's) -> notifier. The groups are flushed after each
    // evaluation, at the evaluation's time.
    AlertGroups* groups = &a->groups_;
    a->engine_ = std::make_unique<AlertEngine>(std::move(*cfg), std::move(sources),
                                               [groups](AlertNotice notice) { groups->Add(notice, notice.at); });
    a->engine_->SetAfterEvaluate(
        [groups, n](double now) { groups->FlushDue(now, [n](AlertGroupNotice g) { n->Enqueue(std::move(g)); }); });
  }
  if (!setup.sentry_dsn.empty()) {
    auto dsn = ParseSentryDsn(setup.sentry_dsn);
    if (!dsn)
      return Error{dsn.error()};
    SentryOptions so;
    so.environment = setup.sentry_environment;
    so.max_per_minute = setup.sentry_max_per_minute;
    a->sentry_ = std::make_unique<SentryForwarder>(*dsn, so);
    log->info("forwarding task failures to Sentry project {}", dsn->project_id);
  }
  if (!a->engine_ && !a->sentry_)
    return std::unique_ptr<Alerting>();
  return Result<std::unique_ptr<Alerting>>(std::move(a));
}

Alerting::~Alerting() { Stop(); }

void Alerting::Attach(ClusterState& state) {
  if (engine_)
    state.AddListener(engine_->listener());
  if (sentry_)
    state.AddListener(sentry_.get());
}

void Alerting::Start() {
  if (notifier_)
    notifier_->Start();
  if (engine_)
    engine_->Start();
  if (sentry_)
    sentry_->Start();
}

void Alerting::Stop() {
  if (engine_)
    engine_->Stop();  // first: no new notices
  if (notifier_)
    notifier_->Stop();
  if (sentry_)
    sentry_->Stop();
}

void Alerting::RenderMetrics(std::string& out, bool openmetrics) const {
  if (engine_) {
    out += "# HELP stalk_alerts_firing Alerts currently firing.\n# TYPE stalk_alerts_firing gauge\n";
    out += "stalk_alerts_firing " + std::to_string(engine_->firing()) + "\n";
    const std::string total = openmetrics ? "" : "_total";
    out += "# HELP stalk_alert_outcomes_dropped" + total +
           " Task outcomes the alert evaluator missed because its feed was full (rules under-count).\n";
    out += "# TYPE stalk_alert_outcomes_dropped" + total + " counter\n";
    out += "stalk_alert_outcomes_dropped_total " + std::to_string(engine_->outcomes_dropped()) + "\n";
  }
  if (notifier_)
    notifier_->RenderMetrics(out, openmetrics);
  if (sentry_)
    sentry_->RenderMetrics(out, openmetrics);
}

}  // namespace stalk
