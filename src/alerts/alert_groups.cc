// Stalk — Celery monitoring server.
#include "alerts/alert_groups.h"

#include <algorithm>

namespace stalk {

void AlertGroups::Add(const AlertNotice& n, double now) {
  std::map<std::string, std::string> labels;
  for (const auto& name : n.group_by) {
    auto it = n.labels.find(name);
    labels[name] = it == n.labels.end() ? std::string() : it->second;
  }
  for (const auto& channel : n.channels) {
    std::string key = channel + "{";
    for (const auto& [k, v] : labels)
      key += k + "=\"" + v + "\",";
    key += "}";
    auto [it, created] = groups_.try_emplace(key);
    Group& g = it->second;
    if (created) {
      g.channel = channel;
      g.labels = labels;
    }
    g.group_interval = n.group_interval;
    if (n.status != "firing" && !n.send_resolved) {
      g.alerts.erase(n.fingerprint);
      if (g.alerts.empty() && !g.dirty)
        groups_.erase(it);
      continue;
    }
    AlertNotice& stored = g.alerts[n.fingerprint];
    stored = n;
    stored.channels = {channel};
    if (!g.dirty) {
      g.dirty = true;
      g.due = g.notified ? std::max(now, g.last_flush + g.group_interval) : now + n.group_wait;
    }
  }
}

void AlertGroups::FlushDue(double now, const Deliver& deliver) {
  for (auto it = groups_.begin(); it != groups_.end();) {
    Group& g = it->second;
    if (!g.dirty || g.due > now) {
      ++it;
      continue;
    }
    AlertGroupNotice out;
    out.channel = g.channel;
    out.group_key = it->first;
    out.group_labels = g.labels;
    for (const auto& [fp, a] : g.alerts) {
      if (a.status == "firing")
        out.alerts.push_back(a);
    }
    const size_t firing = out.alerts.size();
    for (const auto& [fp, a] : g.alerts) {
      if (a.status != "firing")
        out.alerts.push_back(a);
    }
    // Readable order: by labels (w1 before w2), firing ones first.
    auto by_labels = [](const AlertNotice& a, const AlertNotice& b) { return a.labels < b.labels; };
    std::sort(out.alerts.begin(), out.alerts.begin() + static_cast<long>(firing), by_labels);
    std::sort(out.alerts.begin() + static_cast<long>(firing), out.alerts.end(), by_labels);
    out.status = firing > 0 ? "firing" : "resolved";
    std::erase_if(g.alerts, [](const auto& kv) { return kv.second.status != "firing"; });
    g.dirty = false;
    if (!out.alerts.empty()) {  // empty: its only alert resolved unannounced (send_resolved: false)
      g.notified = true;
      g.last_flush = now;
      deliver(std::move(out));
    }
    if (g.alerts.empty()) {
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace stalk
