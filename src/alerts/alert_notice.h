// Stalk — Celery monitoring server.
// AlertNotice: one alert state change to deliver (firing, repeat, or resolved) — what the evaluator
// hands the notifier. Self-contained copies: the notifier thread never reaches back into the engine.
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
  std::string summary;      // one line, for chat and subjects
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  double value = 0;
  double starts_at = 0;  // epoch seconds the alert started firing
  double ends_at = 0;    // resolved: when; firing: 0
  std::vector<std::string> channels;
};

}  // namespace stalk
