// Stalk — Celery monitoring server.
// AlertEngine: evaluates the rules over live state once per evaluation_interval on its own thread and
// runs each alert's lifecycle: pending (condition true, `for` not yet elapsed) -> firing (notify) ->
// resolved (condition false; notify if the firing was notified). Alerts are keyed by a fingerprint of
// rule name + labels, so one condition yields one alert however often it is evaluated; a still-firing
// alert is re-notified every repeat_interval. Silences mute notifications, not the lifecycle.
//
// Inputs are read briefly: the state's read lock for worker liveness, atomics for ingest counters, a
// snapshot function for queue lengths, and task outcomes drained from TaskOutcomeFeed (fed by the
// ingest thread without blocking). Notifications go to a callback that must not block (Notifier's
// bounded queue). Evaluate(now) is public so tests drive the lifecycle with their own clock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alerts/alert_config.h"
#include "alerts/alert_notice.h"
#include "alerts/silences.h"
#include "alerts/task_outcomes.h"
#include "metrics/metrics.h"

namespace stalk {

class SharedState;
struct IngestStats;

struct AlertSources {
  SharedState* state = nullptr;                      // worker liveness, task names
  const IngestStats* ingest = nullptr;               // broker connection, ingest lag
  std::function<std::vector<QueueLength>()> queues;  // latest polled queue lengths (may be empty)
  std::function<double()> now;                       // the clock (epoch seconds)
  // Queue name -> hostnames of the workers that reported consuming it (inspect active_queues); may be
  // null. Liveness is judged from the state, so a dead worker's stale reply does not count.
  std::function<std::map<std::string, std::set<std::string>>()> queue_consumers;
  // Why the durable history store is degraded, or nullopt (null function: no store).
  std::function<std::optional<std::string>()> store_problem;
  // Why the result backend is failing (its last request or probe), or nullopt (null: no backend).
  std::function<std::optional<std::string>()> result_backend_problem;
};

// Where silences are kept across restarts (the store's silences table, wired in cli/). Called outside
// the engine's lock, on the thread that changed the silence; must not block for long (the store
// writer queues the write).
struct SilencePersistence {
  std::function<void(const Silence&)> save;
  std::function<void(const std::string& id)> remove;
};

enum class AlertState : uint8_t { kPending, kFiring, kResolved };

struct AlertView {
  std::string fingerprint, rule, kind, severity, summary;
  AlertState state = AlertState::kPending;
  std::map<std::string, std::string> labels, annotations;
  double value = 0, active_since = 0, fired_at = 0, resolved_at = 0;
  std::string silenced_by;  // id of the muting silence, or empty
};

class AlertEngine {
 public:
  // Gets each firing, repeat and resolve (resolves also when the rule has send_resolved: false, marked
  // so, for the notification groups to let the alert go). Called with the engine's lock held.
  using Notify = std::function<void(AlertNotice)>;
  AlertEngine(AlertConfig config, AlertSources sources, Notify notify);
  ~AlertEngine();
  AlertEngine(const AlertEngine&) = delete;
  AlertEngine& operator=(const AlertEngine&) = delete;

  // Attach to the state before ingestion starts (state.Write()->AddListener(engine.listener())).
  TaskOutcomeFeed* listener() { return &feed_; }

  // Called on the evaluator thread after each evaluation (Alerting flushes notification groups).
  // Set before Start.
  void SetAfterEvaluate(std::function<void(double now)> fn) { after_evaluate_ = std::move(fn); }

  void Start();
  void Stop();
  // One evaluation at `now`: drains task outcomes, computes every rule's conditions, advances the
  // lifecycles and emits notifications. Called by the thread; tests call it directly.
  void Evaluate(double now);

  // ---- API (thread-safe) ----
  std::vector<AlertView> Alerts(double now) const;
  std::string AlertsJson(double now) const;
  std::string SilencesJson(double now) const;
  Result<std::string> AddSilence(const std::string& json_body, double now);
  bool RemoveSilence(const std::string& id);
  // Start-up: silences loaded from the store (ids kept), and where changes go from now on.
  void RestoreSilences(std::vector<Silence> silences);
  void SetSilencePersistence(SilencePersistence p) { persistence_ = std::move(p); }
  size_t firing() const { return firing_.load(std::memory_order_relaxed); }
  uint64_t outcomes_dropped() const { return feed_.dropped(); }
  const AlertConfig& config() const { return config_; }

  // Stable hex fingerprint of a rule name and label set.
  static std::string Fingerprint(const std::string& rule, const std::map<std::string, std::string>& labels);

 private:
  struct Condition {
    std::map<std::string, std::string> labels;  // the instance's own labels (worker, queue, task)
    double value = 0;
    std::string summary;
  };
  struct Alert {
    const RuleConfig* rule = nullptr;
    std::map<std::string, std::string> labels;
    std::string summary;
    AlertState state = AlertState::kPending;
    double value = 0, active_since = 0, fired_at = 0, resolved_at = 0, last_notified = 0;
    bool notified_firing = false;
  };

  std::vector<Condition> Conditions(const RuleConfig& r, double now, const std::vector<QueueLength>& queues);
  void WorkerConditions(const RuleConfig& r, double now, std::vector<Condition>& out);
  void ConsumerConditions(const RuleConfig& r, double now, const std::vector<QueueLength>& queues,
                          std::vector<Condition>& out);
  void Send(const std::string& fingerprint, Alert& a, const char* status, double now);
  // The lifecycle step of Evaluate, under mu_; returns the ids of the silences it expired.
  std::vector<std::string> EvaluateLocked(double now,
                                          std::vector<std::pair<const RuleConfig*, std::vector<Condition>>>& per_rule);
  void Run();

  AlertConfig config_;
  AlertSources sources_;
  Notify notify_;
  std::function<void(double)> after_evaluate_;
  TaskOutcomeFeed feed_;
  TaskWindows windows_;
  std::vector<TaskOutcome> drained_;
  std::map<uint32_t, std::string> names_;  // interned task name -> text (names never change)
  std::set<std::string> seen_alive_;       // workers seen alive: only those can go "offline"
  double started_at_ = 0;

  mutable std::mutex mu_;  // alerts_, silences_
  std::map<std::string, Alert> alerts_;
  Silences silences_;
  SilencePersistence persistence_;  // set before Start
  std::atomic<size_t> firing_{0};

  std::mutex run_mu_;
  std::condition_variable run_cv_;
  bool stop_ = false;
  std::thread thread_;
};

std::string_view AlertStateName(AlertState s);

}  // namespace stalk
