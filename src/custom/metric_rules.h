// Stalk — Celery monitoring server.
// MetricRules: business metrics defined in a YAML file (--metric_rules), no Python handler needed.
// Each rule matches events (event type, task name, queue, worker: exact or `*` globs) and turns each
// match into a counter increment, a gauge value or a histogram observation, with labels taken from the
// event: its own fields (`fields.tenant`), the task's args/kwargs/result repr strings (`kwargs.tenant`,
// `result.total`: a key of the dict they show) or any of those through a regular expression with
// one capture group, and name/queue/worker/type/runtime. Series per rule are capped (`max_series`,
// default 1000); matches past the cap are counted in stalk_metric_rule_overflow_total{rule}.
//
//   rules:
//     - name: orders_paid_total            # exported as stalk_biz_orders_paid_total
//       type: counter                      # counter | gauge | histogram
//       help: Orders paid, by tenant
//       match: {event: order-paid}         # also task:, queue:, worker:
//       labels: {tenant: fields.tenant}
//       value: fields.amount               # counter: add it (default 1); gauge: set; histogram: observe
//     - name: import_rows
//       type: histogram
//       match: {event: task-succeeded, task: "imports.*"}
//       labels: {tenant: {from: kwargs, regex: "tenant_id': '([^']+)'"}}
//       value: result.rows
//       buckets: [10, 100, 1000, 10000]
//
// Errors name the file, line and column. Reload (SIGHUP) keeps the series of rules whose name and
// type did not change. Evaluation runs on the ingest thread: rules are indexed by event type so an
// event only meets the rules that can match it.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <unordered_map>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "common/result.h"
#include "state/state_listener.h"

namespace stalk {

struct RuleValueRef {
  enum class Source { kConstant, kField, kArgs, kKwargs, kResult, kName, kQueue, kWorker, kType, kRuntime };
  Source source = Source::kConstant;
  std::string key;                    // the field / dict key ("" with a regex: the whole text)
  std::shared_ptr<std::regex> regex;  // one capture group
  double constant = 1;
};

struct MetricRule {
  std::string name;  // without the stalk_biz_ prefix
  std::string type;  // counter, gauge, histogram
  std::string help;
  std::string match_event = "*", match_task = "*", match_queue = "*", match_worker = "*";
  std::vector<std::pair<std::string, RuleValueRef>> labels;
  RuleValueRef value;
  std::vector<double> buckets;
  size_t max_series = 1000;
};

class MetricRules : public StateListener {
 public:
  // Parses rules; errors as "<source>:<line>:<column>: <what>".
  static Result<std::vector<MetricRule>> Parse(const std::string& yaml_text, const std::string& source);

  // Loads (or reloads) the file: on error the rules in force stay as they are.
  Result<size_t> Load(const std::string& path);
  size_t rule_count() const;

  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  void OnOtherEvent(const ClusterState& state, const Event& ev) override;

  // Appends the stalk_biz_* families (before OpenMetrics' "# EOF").
  void Append(bool openmetrics, std::string& exposition) const;

 private:
  struct Series {
    double value = 0;
    std::vector<uint64_t> bucket_counts;
    double sum = 0;
    uint64_t count = 0;
  };
  struct Compiled {
    MetricRule rule;
    // Keyed by the label values joined with \x1f (one reused buffer per event, no allocation once a
    // series exists); split again only when rendering.
    std::unordered_map<std::string, Series> series;
    uint64_t overflow = 0;
  };
  void Evaluate(const ClusterState& state, const Task* task, const Event& ev);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Compiled>> rules_;
  // Rules by what they match, so an event meets only the rules that can match it: exact event type
  // and exact task name ("type\x1fname"), exact event type with a task glob, and event globs.
  // absl maps: looked up by string_view, no key copy per event.
  absl::flat_hash_map<std::string, std::vector<Compiled*>> by_event_task_;
  absl::flat_hash_map<std::string, std::vector<Compiled*>> by_event_;
  std::vector<Compiled*> any_event_;
  // Event types some indexed rule names: most events (task-sent, -received, -started, heartbeats)
  // meet no rule, and leave after this one lookup.
  absl::flat_hash_set<std::string> event_types_;
  // Scratch reused across events (ingest thread, under mu_).
  std::vector<Compiled*> candidates_;
  std::string lookup_, key_, text_;
};

}  // namespace stalk
