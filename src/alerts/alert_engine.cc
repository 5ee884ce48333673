// Stalk — Celery monitoring server.
#include "alerts/alert_engine.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "alerts/duration.h"
#include "common/clock.h"
#include "common/ingest_stats.h"
#include "common/log.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

std::string Fmt(double v) {
  char buf[32];
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

// "{{ $value }}" and "{{ $labels.name }}" in an annotation, as in Prometheus rules.
std::string Expand(const std::string& tmpl, const std::map<std::string, std::string>& labels, double value) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find("{{", i);
    if (open == std::string::npos)
      break;
    const size_t close = tmpl.find("}}", open);
    if (close == std::string::npos)
      break;
    out.append(tmpl, i, open - i);
    std::string expr = tmpl.substr(open + 2, close - open - 2);
    expr.erase(0, expr.find_first_not_of(' '));
    expr.erase(expr.find_last_not_of(' ') + 1);
    if (expr == "$value") {
      out += Fmt(value);
    } else if (expr.starts_with("$labels.")) {
      auto it = labels.find(expr.substr(8));
      if (it != labels.end())
        out += it->second;
    } else {
      out.append(tmpl, open, close + 2 - open);
    }
    i = close + 2;
  }
  out.append(tmpl, i);
  return out;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

std::string_view AlertStateName(AlertState s) {
  switch (s) {
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
    case AlertState::kResolved:
      return "resolved";
  }
  return "unknown";
}

AlertEngine::AlertEngine(AlertConfig config, AlertSources sources, Notify notify)
    : config_(std::move(config)), sources_(std::move(sources)), notify_(std::move(notify)), windows_([&] {
        double h = 60;
        for (const auto& r : config_.rules)
          h = std::max(h, r.window);
        return h;
      }()) {
  if (!sources_.now) {
    sources_.now = [] { return UnixSeconds(); };
  }
  started_at_ = sources_.now();
  feed_.SetClock(sources_.now);
}

AlertEngine::~AlertEngine() { Stop(); }

void AlertEngine::Start() {
  thread_ = std::thread([this] { Run(); });
}

void AlertEngine::Stop() {
  {
    std::lock_guard lock(run_mu_);
    stop_ = true;
  }
  run_cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void AlertEngine::Run() {
  const auto interval = std::chrono::duration<double>(config_.evaluation_interval);
  std::unique_lock lock(run_mu_);
  while (!stop_) {
    lock.unlock();
    Evaluate(sources_.now());
    lock.lock();
    run_cv_.wait_for(lock, interval, [this] { return stop_; });
  }
}

std::string AlertEngine::Fingerprint(const std::string& rule, const std::map<std::string, std::string>& labels) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a 64
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h ^= 0xff;  // separator
    h *= 1099511628211ULL;
  };
  mix(rule);
  for (const auto& [k, v] : labels) {
    mix(k);
    mix(v);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void AlertEngine::WorkerConditions(const RuleConfig& r, double now, std::vector<Condition>& out) {
  if (!sources_.state)
    return;
  auto st = sources_.state->Read();
  // A worker seen alive and then purged (--purge_offline_workers) is still offline: its alert stays
  // firing instead of resolving falsely.
  for (const auto& host : seen_alive_) {
    if (GlobMatch(r.worker, host) && !st->FindWorker(host)) {
      out.push_back(Condition{{{"worker", host}}, 0, "Worker " + host + " is offline (and was purged)"});
    }
  }
  for (const auto& [id, w] : st->workers()) {
    if (!GlobMatch(r.worker, w.hostname) || w.last_heartbeat <= 0)
      continue;
    const double silent = now - w.last_heartbeat;
    const bool offline = w.offline_event || silent > r.missed_heartbeats * std::max(w.freq, 0.1);
    if (!offline) {
      seen_alive_.insert(w.hostname);
      continue;
    }
    if (!seen_alive_.contains(w.hostname))
      continue;  // offline since before we started watching
    out.push_back(Condition{{{"worker", w.hostname}},
                            silent,
                            "Worker " + w.hostname + " is offline (" +
                                (w.offline_event ? std::string("worker-offline received")
                                                 : "no heartbeat for " + FormatRuleDuration(silent)) +
                                ")"});
  }
}

void AlertEngine::ConsumerConditions(const RuleConfig& r, double now, const std::vector<QueueLength>& queues,
                                     std::vector<Condition>& out) {
  const auto consumers =
      sources_.queue_consumers ? sources_.queue_consumers() : std::map<std::string, std::set<std::string>>{};
  std::set<std::string> names;
  for (const auto& q : queues)
    names.insert(q.name);
  for (const auto& [q, hosts] : consumers)
    names.insert(q);
  if (!r.queue.empty() && r.queue.back() != '*')
    names.insert(r.queue);
  std::vector<std::pair<std::string, const std::set<std::string>*>> todo;
  for (const auto& q : names) {
    if (!GlobMatch(r.queue, q))
      continue;
    auto it = consumers.find(q);
    todo.emplace_back(q, it == consumers.end() ? nullptr : &it->second);
  }
  if (todo.empty())
    return;
  std::optional<SharedState::ReadLock> st;
  if (sources_.state)
    st.emplace(*sources_.state);
  for (const auto& [q, hosts] : todo) {
    size_t alive = 0;
    if (hosts && st) {
      for (const auto& h : *hosts) {
        const Worker* w = (*st)->FindWorker(h);
        alive += w && (*st)->IsAlive(*w, now);
      }
    }
    if (alive == 0) {
      out.push_back(Condition{{{"queue", q}}, 0, "No live worker consumes queue " + q});
    }
  }
}

std::vector<AlertEngine::Condition> AlertEngine::Conditions(const RuleConfig& r, double now,
                                                            const std::vector<QueueLength>& queues) {
  std::vector<Condition> out;
  switch (r.kind) {
    case RuleKind::kWorkerOffline:
      WorkerConditions(r, now, out);
      break;
    case RuleKind::kQueueLength:
      for (const auto& q : queues) {
        if (GlobMatch(r.queue, q.name) && static_cast<double>(q.messages) > r.threshold) {
          out.push_back(Condition{{{"queue", q.name}},
                                  static_cast<double>(q.messages),
                                  "Queue " + q.name + " holds " + Fmt(static_cast<double>(q.messages)) +
                                      " messages (more than " + Fmt(r.threshold) + ")"});
        }
      }
      break;
    case RuleKind::kTaskFailureRate:
    case RuleKind::kTaskFailureCount:
    case RuleKind::kTaskRuntime:
    case RuleKind::kQueueWait:
      for (const auto& name : windows_.Names()) {
        if (!GlobMatch(r.task, name))
          continue;
        const auto s = windows_.Window(name, now, r.window);
        const std::string over = " over " + FormatRuleDuration(r.window);
        if (r.kind == RuleKind::kTaskFailureCount) {
          if (static_cast<double>(s.failures) > r.threshold) {
            out.push_back(Condition{{{"task", name}},
                                    static_cast<double>(s.failures),
                                    "Task " + name + " failed " + std::to_string(s.failures) + " times" + over});
          }
        } else if (r.kind == RuleKind::kTaskFailureRate) {
          const uint64_t total = s.failures + s.successes;
          if (total > 0 && total >= static_cast<uint64_t>(std::max(1, r.min_count))) {
            const double rate = static_cast<double>(s.failures) / static_cast<double>(total);
            if (rate > r.threshold) {
              out.push_back(Condition{{{"task", name}},
                                      rate,
                                      "Task " + name + " failure rate " + Fmt(rate * 100) + "% (" +
                                          std::to_string(s.failures) + "/" + std::to_string(total) + ")" + over});
            }
          }
        } else if (r.kind == RuleKind::kQueueWait) {
          if (s.waits.empty())
            continue;
          const double v =
              r.percentile > 0 ? Percentile(s.waits, r.percentile) : *std::max_element(s.waits.begin(), s.waits.end());
          if (v > r.threshold) {
            out.push_back(Condition{{{"task", name}},
                                    v,
                                    "Task " + name + (r.percentile > 0 ? " p" + Fmt(r.percentile) : " max") +
                                        " queue wait " + Fmt(v) + "s (more than " + Fmt(r.threshold) + "s)" + over});
          }
        } else if (!s.runtimes.empty()) {
          const double v = r.percentile > 0 ? Percentile(s.runtimes, r.percentile)
                                            : *std::max_element(s.runtimes.begin(), s.runtimes.end());
          if (v > r.sla) {
            out.push_back(Condition{{{"task", name}},
                                    v,
                                    "Task " + name + (r.percentile > 0 ? " p" + Fmt(r.percentile) : " max") +
                                        " runtime " + Fmt(v) + "s over the " + Fmt(r.sla) + "s SLA" + over});
          }
        }
      }
      break;
    case RuleKind::kTaskNotSucceeded: {
      const double last = std::max(windows_.LastSuccess(r.task), started_at_);
      if (now - last > r.max_age) {
        out.push_back(Condition{{{"task", r.task}},
                                now - last,
                                "Task " + r.task + " has not succeeded for " + FormatRuleDuration(now - last)});
      }
      break;
    }
    case RuleKind::kNoConsumer:
      ConsumerConditions(r, now, queues, out);
      break;
    case RuleKind::kStoreErrors:
      if (sources_.store_problem) {
        if (auto why = sources_.store_problem()) {
          out.push_back(Condition{{}, 1, "The history store is degraded: " + *why});
        }
      }
      break;
    case RuleKind::kResultBackendErrors:
      if (sources_.result_backend_problem) {
        if (auto why = sources_.result_backend_problem()) {
          out.push_back(Condition{{}, 1, "The result backend is failing: " + *why});
        }
      }
      break;
    case RuleKind::kIngestLag:
      if (sources_.ingest) {
        const double lag = sources_.ingest->ingest_lag_seconds.load(std::memory_order_relaxed);
        if (lag > r.threshold) {
          out.push_back(
              Condition{{}, lag, "Events arrive " + Fmt(lag) + "s late (more than " + Fmt(r.threshold) + "s)"});
        }
      }
      break;
    case RuleKind::kBrokerUnreachable:
      if (sources_.ingest && !sources_.ingest->broker_connected.load(std::memory_order_relaxed)) {
        const double since = sources_.ingest->last_disconnected_at.load(std::memory_order_relaxed);
        const double down = since > 0 ? now - since : now - started_at_;
        out.push_back(Condition{{}, down, "The broker is unreachable (for " + FormatRuleDuration(down) + ")"});
      }
      break;
  }
  return out;
}

void AlertEngine::Send(const std::string& fingerprint, Alert& a, const char* status, double now) {
  a.last_notified = now;
  if (!notify_ || a.rule->channels.empty())
    return;
  AlertNotice n;
  n.rule = a.rule->name;
  n.fingerprint = fingerprint;
  n.status = status;
  n.severity = a.rule->severity;
  n.labels = a.labels;
  n.value = a.value;
  for (const auto& [k, v] : a.rule->annotations)
    n.annotations[k] = Expand(v, a.labels, a.value);
  n.summary = n.annotations.contains("summary") ? n.annotations["summary"] : a.summary;
  if (!n.annotations.contains("summary"))
    n.annotations["summary"] = a.summary;
  n.starts_at = a.fired_at;
  n.ends_at = a.state == AlertState::kResolved ? a.resolved_at : 0;
  n.at = now;
  n.channels = a.rule->channels;
  n.group_by = a.rule->group_by;
  n.group_wait = a.rule->group_wait;
  n.group_interval = a.rule->group_interval;
  n.send_resolved = a.rule->send_resolved;
  notify_(std::move(n));
}

void AlertEngine::Evaluate(double now) {
  // Inputs first, outside mu_: task outcomes (names resolved under a brief read lock), queue lengths.
  feed_.Drain(drained_);
  if (!drained_.empty()) {
    std::vector<uint32_t> missing;
    for (const auto& o : drained_) {
      if (!names_.contains(o.name))
        missing.push_back(o.name);
    }
    if (!missing.empty() && sources_.state) {
      auto st = sources_.state->Read();
      for (uint32_t id : missing)
        names_[id] = std::string(st->Name(id));
    }
    for (const auto& o : drained_)
      windows_.Add(names_[o.name], o);
  }
  windows_.Prune(now);
  const auto queues = sources_.queues ? sources_.queues() : std::vector<QueueLength>{};

  std::vector<std::pair<const RuleConfig*, std::vector<Condition>>> per_rule;
  per_rule.reserve(config_.rules.size());
  for (const auto& r : config_.rules)
    per_rule.emplace_back(&r, Conditions(r, now, queues));

  std::vector<std::string> expired;
  {
    std::lock_guard lock(mu_);
    expired = EvaluateLocked(now, per_rule);
  }
  if (persistence_.remove) {
    for (const auto& id : expired)
      persistence_.remove(id);
  }
  if (after_evaluate_)
    after_evaluate_(now);
}

std::vector<std::string> AlertEngine::EvaluateLocked(
    double now, std::vector<std::pair<const RuleConfig*, std::vector<Condition>>>& per_rule) {
  std::set<std::string> active;
  for (auto& [rule, conds] : per_rule) {
    for (auto& c : conds) {
      std::map<std::string, std::string> labels = rule->labels;
      labels["alertname"] = rule->name;
      labels["severity"] = rule->severity;
      for (auto& [k, v] : c.labels)
        labels[k] = v;
      const std::string fp = Fingerprint(rule->name, labels);
      active.insert(fp);
      auto [it, created] = alerts_.try_emplace(fp);
      Alert& a = it->second;
      if (created || a.state == AlertState::kResolved) {
        a = Alert{};
        a.rule = rule;
        a.labels = std::move(labels);
        a.active_since = now;
      }
      a.value = c.value;
      a.summary = std::move(c.summary);
      const bool silenced = silences_.Find(a.labels, now) != nullptr;
      if (a.state == AlertState::kPending && now - a.active_since >= rule->for_seconds) {
        a.state = AlertState::kFiring;
        a.fired_at = now;
        if (!silenced) {
          a.notified_firing = true;
          Send(fp, a, "firing", now);
        }
      } else if (a.state == AlertState::kFiring && !silenced) {
        if (!a.notified_firing || (rule->repeat_interval > 0 && now - a.last_notified >= rule->repeat_interval)) {
          a.notified_firing = true;
          Send(fp, a, "firing", now);
        }
      }
    }
  }
  size_t firing = 0;
  for (auto it = alerts_.begin(); it != alerts_.end();) {
    Alert& a = it->second;
    if (!active.contains(it->first)) {
      if (a.state == AlertState::kPending) {
        it = alerts_.erase(it);
        continue;
      }
      if (a.state == AlertState::kFiring) {
        a.state = AlertState::kResolved;
        a.resolved_at = now;
        // Without send_resolved the resolve still goes out of its notification group (alert_groups.h).
        if (a.notified_firing)
          Send(it->first, a, "resolved", now);
      } else if (now - a.resolved_at > config_.resolved_retention) {
        it = alerts_.erase(it);
        continue;
      }
    }
    if (a.state == AlertState::kFiring)
      ++firing;
    ++it;
  }
  firing_.store(firing, std::memory_order_relaxed);
  return silences_.Expire(now, 3600);
}

std::vector<AlertView> AlertEngine::Alerts(double now) const {
  std::lock_guard lock(mu_);
  std::vector<AlertView> out;
  for (const auto& [fp, a] : alerts_) {
    AlertView v;
    v.fingerprint = fp;
    v.rule = a.rule->name;
    v.kind = std::string(RuleKindName(a.rule->kind));
    v.severity = a.rule->severity;
    v.summary = a.summary;
    v.state = a.state;
    v.labels = a.labels;
    for (const auto& [k, t] : a.rule->annotations)
      v.annotations[k] = Expand(t, a.labels, a.value);
    v.value = a.value;
    v.active_since = a.active_since;
    v.fired_at = a.fired_at;
    v.resolved_at = a.resolved_at;
    if (const Silence* s = silences_.Find(a.labels, now))
      v.silenced_by = s->id;
    out.push_back(std::move(v));
  }
  return out;
}

std::string AlertEngine::AlertsJson(double now) const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& v : Alerts(now)) {
    nlohmann::json j = {{"fingerprint", v.fingerprint},
                        {"rule", v.rule},
                        {"kind", v.kind},
                        {"state", std::string(AlertStateName(v.state))},
                        {"severity", v.severity},
                        {"summary", v.summary},
                        {"labels", v.labels},
                        {"annotations", v.annotations},
                        {"value", v.value},
                        {"active_since", v.active_since}};
    j["fired_at"] = v.fired_at > 0 ? nlohmann::json(v.fired_at) : nlohmann::json();
    j["resolved_at"] = v.resolved_at > 0 ? nlohmann::json(v.resolved_at) : nlohmann::json();
    j["silenced_by"] = v.silenced_by.empty() ? nlohmann::json() : nlohmann::json(v.silenced_by);
    list.push_back(std::move(j));
  }
  nlohmann::json rules = nlohmann::json::array();
  for (const auto& r : config_.rules) {
    rules.push_back({{"name", r.name},
                     {"kind", std::string(RuleKindName(r.kind))},
                     {"for", r.for_seconds},
                     {"severity", r.severity},
                     {"channels", r.channels}});
  }
  return nlohmann::json{{"alerts", list}, {"rules", rules}, {"firing", firing()}}.dump();
}

std::string AlertEngine::SilencesJson(double now) const {
  std::lock_guard lock(mu_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : silences_.all()) {
    list.push_back({{"id", s.id},
                    {"matchers", s.matchers},
                    {"starts_at", s.starts_at},
                    {"ends_at", s.ends_at},
                    {"created_by", s.created_by},
                    {"comment", s.comment},
                    {"state", s.ActiveAt(now) ? "active" : (now < s.starts_at ? "pending" : "expired")}});
  }
  return nlohmann::json{{"silences", list}}.dump();
}

Result<std::string> AlertEngine::AddSilence(const std::string& json_body, double now) {
  auto s = Silences::Parse(json_body, now);
  if (!s)
    return Error{s.error()};
  std::string id;
  Silence saved;
  {
    std::lock_guard lock(mu_);
    id = silences_.Add(std::move(*s));
    saved = silences_.all().back();
  }
  if (persistence_.save)
    persistence_.save(saved);
  return id;
}

bool AlertEngine::RemoveSilence(const std::string& id) {
  bool removed = false;
  {
    std::lock_guard lock(mu_);
    removed = silences_.Remove(id);
  }
  if (removed && persistence_.remove)
    persistence_.remove(id);
  return removed;
}

void AlertEngine::RestoreSilences(std::vector<Silence> silences) {
  std::lock_guard lock(mu_);
  for (auto& s : silences)
    silences_.Restore(std::move(s));
}

}  // namespace stalk
