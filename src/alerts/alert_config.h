// Stalk — Celery monitoring server.
// AlertConfig: the rules file (YAML) as typed structs — notification channels, alert rules and their
// parameters. Loaded and validated once at start-up: unknown keys, unknown kinds, bad durations and
// references to undeclared channels are errors naming the file, line and column. Secrets never appear
// in the file: channels name the environment variables that hold URLs, keys and passwords.
//
//   channels:
//     ops: {type: slack, url_env: STALK_SLACK_WEBHOOK_URL}
//   rules:
//     - name: WorkerOffline
//       kind: worker_offline
//       for: 30s
//       severity: critical
//       channels: [ops]
#pragma once

#include "common/glob.h"  // GlobMatch: exact, globs, or empty = any

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace stalk {

enum class ChannelType : uint8_t { kSlack, kPagerDuty, kWebhook, kAlertmanager, kEmail };
std::string_view ChannelTypeName(ChannelType t);

struct ChannelConfig {
  std::string name;
  ChannelType type = ChannelType::kWebhook;
  // Names of environment variables (never the values).
  std::string url_env;                     // slack/webhook/alertmanager: the URL; email: smtp://host:port or smtps://
  std::string secret_env;                  // webhook: HMAC-SHA256 key for the X-Stalk-Signature header
  std::string routing_key_env;             // pagerduty: the integration's routing key
  std::string username_env, password_env;  // email: SMTP AUTH (optional)
  std::string from;                        // email
  std::vector<std::string> to;             // email
  bool starttls = false;                   // email: require STARTTLS on smtp://
  double timeout = 5;                      // seconds per delivery attempt
  int max_retries = 3;                     // attempts after the first, with exponential backoff
};

enum class RuleKind : uint8_t {
  kWorkerOffline,        // a worker missed `missed_heartbeats` heartbeats (or sent worker-offline)
  kQueueLength,          // a broker queue holds more than `threshold` messages
  kTaskFailureRate,      // failures / (successes + failures) over `window` above `threshold`
  kTaskFailureCount,     // more than `threshold` failures over `window`
  kTaskRuntime,          // runtime over `sla`: any task (percentile 0) or the window's percentile
  kTaskNotSucceeded,     // dead-man's switch: no success of `task` for `max_age`
  kQueueWait,            // received -> started wait at the worker over `threshold` s (any, or percentile)
  kNoConsumer,           // no live worker consumes a queue (workers' inspect active_queues)
  kStoreErrors,          // the durable history store reports a problem (failing writes, dropped rows)
  kIngestLag,            // event age on arrival above `threshold` seconds
  kBrokerUnreachable,    // the event connection to the broker is down
  kResultBackendErrors,  // the result backend's last request or probe failed
};
std::string_view RuleKindName(RuleKind k);

struct RuleConfig {
  std::string name;
  RuleKind kind = RuleKind::kWorkerOffline;
  double for_seconds = 0;  // condition must hold this long before firing
  std::string severity = "warning";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;  // summary, description, runbook_url...
  std::vector<std::string> channels;
  double repeat_interval = 4 * 3600;  // re-notify a still-firing alert this often (0 = never)
  bool send_resolved = true;
  // Grouping of notifications (alert_groups.h): alerts with equal values of these labels go out
  // together, per channel. Defaults come from the file's top level.
  std::vector<std::string> group_by{"alertname"};
  double group_wait = 0;      // a new group gathers alerts this long before its first notification
  double group_interval = 0;  // at least this long between two notifications of one group
  // Parameters (which apply depends on the kind; see README "Alerting").
  std::string task;    // task name; empty: every task name (one alert per name)
  std::string queue;   // queue name; empty: every polled queue
  std::string worker;  // worker hostname; empty: every worker; a trailing '*' matches a prefix
  double threshold = 0;
  double window = 300;
  int min_count = 1;      // failure rate: fewest finished tasks in the window to judge
  double percentile = 0;  // task_runtime: 0 = any task over the SLA; else e.g. 95
  double sla = 0;         // task_runtime: seconds
  double max_age = 0;     // task_not_succeeded: seconds
  int missed_heartbeats = 2;
};

struct AlertConfig {
  std::vector<ChannelConfig> channels;
  std::vector<RuleConfig> rules;
  double evaluation_interval = 1;   // seconds between evaluations
  double resolved_retention = 300;  // resolved alerts stay listed in /api/alerts this long
  std::vector<std::string> default_channels;
  // Top-level group_by / group_wait / group_interval: the rules' defaults.
  std::vector<std::string> group_by{"alertname"};
  double group_wait = 0;
  double group_interval = 0;

  const ChannelConfig* FindChannel(std::string_view name) const;
};

// Parses YAML text; `source` names it in errors ("rules.yml:12:5: ...").
Result<AlertConfig> ParseAlertConfig(const std::string& text, const std::string& source);
// Reads and parses the file.
Result<AlertConfig> LoadAlertConfig(const std::string& path);

}  // namespace stalk
