// Stalk — Celery monitoring server.
// AlertNotice: one alert state change to deliver (firing, repeat, or resolved) — what the evaluator
// hands on. AlertGroupNotice: what one channel receives in one delivery — the alerts of one group
// (alert_groups.h) that changed together, plus those of the group still firing, as Alertmanager does.
// Self-contained copies: the notifier thread never reaches back into the engine.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace stalk {

struct AlertNotice {
  std::string rule;         // the rule name (also labels["alertname"])
  std::string fingerprint;  // stable id of rule + labels: PagerDuty's dedup_key
  std::string status;       // "firing" or "resolved"
  std::string severity;
  std::string summary;  // one line, for chat and subjects
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  double value = 0;
  double starts_at = 0;  // epoch seconds the alert started firing
  double ends_at = 0;    // resolved: when; firing: 0
  double at = 0;         // the evaluation that produced this notice
  std::vector<std::string> channels;
  // The rule's grouping (alert_config.h RuleConfig): which labels make a group, how long a new group
  // gathers alerts before its first notification, and the least time between two notifications of it.
  std::vector<std::string> group_by{"alertname"};
  double group_wait = 0;
  double group_interval = 0;
  bool send_resolved = true;  // false: a resolve only takes the alert out of its group, unannounced
};

struct AlertGroupNotice {
  std::string channel;
  std::string group_key;                            // channel + the group_by labels' values
  std::map<std::string, std::string> group_labels;  // the group_by labels and their values
  std::string status;                               // "firing" while any alert of it fires, else "resolved"
  std::vector<AlertNotice> alerts;                  // firing first, then resolved; by labels within each
  size_t firing() const {
    size_t n = 0;
    for (const auto& a : alerts)
      n += a.status == "firing";
    return n;
  }
};

}  // namespace stalk
