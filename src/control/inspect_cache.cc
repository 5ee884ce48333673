// Stalk — Celery monitoring server.
#include "control/inspect_cache.h"

#include <cstdio>

#include "control/kombu_message.h"

namespace stalk {

const std::vector<InspectMethod>& CachedInspectMethods() {
  static const std::vector<InspectMethod> methods = {
      {"stats", "{}"},
      {"active_queues", "{}"},                     // takes no arguments at all
      {"registered", R"({"taskinfoitems": []})"},  // empty: Celery's default items (incl. rate_limit)
      {"scheduled", "{}"},
      {"active", R"({"safe": null})"},
      {"reserved", "{}"},
      {"revoked", "{}"},
      {"conf", R"({"with_defaults": false})"},
  };
  return methods;
}

std::vector<std::string> InspectCache::Update(const std::string& method, const std::vector<ControlReply>& replies,
                                              double now) {
  std::vector<std::string> answered;
  std::lock_guard lock(mu_);
  for (const ControlReply& r : replies) {
    if (r.body.is_null() || (r.body.is_object() && r.body.size() == 1 && r.body.contains("error"))) {
      continue;
    }
    Entry& e = workers_[r.hostname];
    e.by_method[method] = DumpJson(r.body);
    e.timestamp = now;
    if (method == "active_queues" && r.body.is_array()) {
      e.queues.clear();
      for (const auto& q : r.body) {
        if (q.is_object() && q.contains("name") && q["name"].is_string()) {
          e.queues.insert(q["name"].get<std::string>());
        }
      }
    } else if (method == "registered" && r.body.is_array()) {
      e.registered.clear();
      e.has_registered = true;
      for (const auto& item : r.body) {
        if (item.is_string()) {
          // "name" or "name [rate_limit=10/m ...]"
          const auto& s = item.get_ref<const std::string&>();
          e.registered.insert(s.substr(0, s.find(' ')));
        }
      }
    }
    answered.push_back(r.hostname);
  }
  return answered;
}

InspectCache::Fields InspectCache::Render(const Entry& e) {
  Fields f;
  for (const auto& m : CachedInspectMethods()) {
    if (auto it = e.by_method.find(m.name); it != e.by_method.end()) {
      f.emplace_back(m.name, it->second);
    }
  }
  char ts[64];
  std::snprintf(ts, sizeof ts, "%.6f", e.timestamp);
  f.emplace_back("timestamp", ts);
  return f;
}

std::map<std::string, InspectCache::Fields> InspectCache::Snapshot() const {
  std::lock_guard lock(mu_);
  std::map<std::string, Fields> out;
  for (const auto& [host, e] : workers_) {
    out.emplace(host, Render(e));
  }
  return out;
}

std::optional<InspectCache::Fields> InspectCache::SnapshotOf(const std::string& hostname) const {
  std::lock_guard lock(mu_);
  auto it = workers_.find(hostname);
  if (it == workers_.end()) {
    return std::nullopt;
  }
  return Render(it->second);
}

bool InspectCache::Knows(const std::string& hostname) const {
  std::lock_guard lock(mu_);
  return workers_.contains(hostname);
}

std::vector<std::string> InspectCache::Hostnames() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [host, e] : workers_)
    out.push_back(host);
  return out;
}

std::vector<std::string> InspectCache::QueueNames() const {
  std::lock_guard lock(mu_);
  std::set<std::string> names;
  for (const auto& [host, e] : workers_)
    names.insert(e.queues.begin(), e.queues.end());
  return {names.begin(), names.end()};
}

std::optional<bool> InspectCache::IsRegistered(const std::string& task_name) const {
  std::lock_guard lock(mu_);
  bool any_list = false;
  for (const auto& [host, e] : workers_) {
    if (!e.has_registered)
      continue;
    any_list = true;
    if (e.registered.contains(task_name))
      return true;
  }
  if (!any_list)
    return std::nullopt;
  return false;
}

void InspectCache::Forget(const std::string& hostname) {
  std::lock_guard lock(mu_);
  workers_.erase(hostname);
}

}  // namespace stalk
