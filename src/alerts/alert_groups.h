// Stalk — Celery monitoring server.
// AlertGroups: Alertmanager's grouping between the evaluator and the notifier. Alerts whose group_by
// labels have the same values (default: the same alertname) form one group per channel, and a
// channel gets one notification per group instead of one per alert:
//   - a new group waits `group_wait` to gather alerts that fire together (two workers killed at once
//     -> one "worker offline" message naming both);
//   - later changes (a new alert, a resolve, a repeat) wait until `group_interval` has passed since
//     the group's last notification;
//   - each notification lists the group's firing alerts and those resolved since the last one; the
//     resolved ones then leave the group, and an empty group is forgotten.
// Defaults are 0 s / 0 s (not Alertmanager's 30 s / 5 m): a lone alert goes out at once, alerts of
// the same evaluation still go out together. Not thread-safe: the evaluator thread owns it.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "alerts/alert_notice.h"

namespace stalk {

class AlertGroups {
 public:
  using Deliver = std::function<void(AlertGroupNotice)>;

  // Records one alert change for each of its channels, keyed by its fingerprint (a later change of
  // the same alert replaces the earlier one).
  void Add(const AlertNotice& n, double now);
  // Delivers every group whose time has come; call after each evaluation.
  void FlushDue(double now, const Deliver& deliver);
  size_t groups() const { return groups_.size(); }

 private:
  struct Group {
    std::string channel;
    std::map<std::string, std::string> labels;
    std::map<std::string, AlertNotice> alerts;  // fingerprint -> latest change
    double group_interval = 0;
    double due = 0;
    double last_flush = 0;
    bool dirty = false;
    bool notified = false;
  };
  std::map<std::string, Group> groups_;
};

}  // namespace stalk
