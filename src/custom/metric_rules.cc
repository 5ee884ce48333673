// Stalk — Celery monitoring server.
#include "custom/metric_rules.h"

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/glob.h"
#include "custom/yaml_where.h"
#include "metrics/exposition_writer.h"
#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

bool ValidName(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) {
    return false;
  }
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

std::string EscapeRegex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) {
      out += '\\';
    }
    out += c;
  }
  return out;
}

// `kwargs.tenant`-style: the value of key `tenant` in the dict a repr string shows.
std::shared_ptr<std::regex> DictKeyRegex(const std::string& key) {
  return std::make_shared<std::regex>("['\"]" + EscapeRegex(key) +
                                      R"(['"]\s*:\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,}\]\s]+))");
}

Result<RuleValueRef> ParseRef(const YAML::Node& node, const std::string& source) {
  RuleValueRef ref;
  if (node.IsScalar()) {
    const std::string text = node.as<std::string>();
    char* end = nullptr;
    const double d = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size()) {
      ref.source = RuleValueRef::Source::kConstant;
      ref.constant = d;
      return ref;
    }
    const size_t dot = text.find('.');
    const std::string head = text.substr(0, dot);
    const std::string key = dot == std::string::npos ? "" : text.substr(dot + 1);
    using S = RuleValueRef::Source;
    static const std::map<std::string, S> kSources = {
        {"fields", S::kField}, {"args", S::kArgs},      {"kwargs", S::kKwargs}, {"result", S::kResult},
        {"name", S::kName},    {"task", S::kName},      {"queue", S::kQueue},   {"worker", S::kWorker},
        {"type", S::kType},    {"runtime", S::kRuntime}};
    auto it = kSources.find(head);
    if (it == kSources.end()) {
      return Error{YamlWhere(source, node.Mark()) + "unknown value '" + text +
                   "' (fields.X, args, kwargs.X, result.X, name, queue, worker, type, runtime, or a number)"};
    }
    ref.source = it->second;
    ref.key = key;
    if (ref.source == S::kField && key.empty()) {
      return Error{YamlWhere(source, node.Mark()) + "fields needs a key: fields.<name>"};
    }
    if ((ref.source == S::kArgs || ref.source == S::kKwargs || ref.source == S::kResult) && !key.empty()) {
      ref.regex = DictKeyRegex(key);
    }
    return ref;
  }
  if (node.IsMap() && node["from"] && node["regex"]) {
    auto base = ParseRef(node["from"], source);
    if (!base) {
      return base;
    }
    ref = *base;
    try {
      ref.regex = std::make_shared<std::regex>(node["regex"].as<std::string>());
    } catch (const std::regex_error& e) {
      return Error{YamlWhere(source, node["regex"].Mark()) + "invalid regex: " + e.what()};
    }
    if (ref.regex->mark_count() != 1) {
      return Error{YamlWhere(source, node["regex"].Mark()) + "the regex needs exactly one capture group"};
    }
    return ref;
  }
  return Error{YamlWhere(source, node.Mark()) + "expected a value reference or {from: ..., regex: ...}"};
}

std::string Unquote(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"') && s.back() == s.front()) {
    s = s.substr(1, s.size() - 2);
  }
  return s;
}

}  // namespace

Result<std::vector<MetricRule>> MetricRules::Parse(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return Error{YamlWhere(source, e.mark) + e.msg};
  }
  if (root.IsMap() && !root["rules"] && root["sla"]) {
    return std::vector<MetricRule>{};  // only SLA targets (custom/sla_tracker.h)
  }
  if (!root.IsMap() || !root["rules"] || !root["rules"].IsSequence()) {
    return Error{YamlWhere(source, root.Mark()) + "expected a top-level `rules:` list"};
  }
  std::vector<MetricRule> out;
  try {
    for (const YAML::Node& r : root["rules"]) {
      const std::string at = YamlWhere(source, r.Mark());
      if (!r.IsMap()) {
        return Error{at + "a rule is a mapping (name, type, match, labels, value)"};
      }
      for (const auto& kv : r) {
        static const std::vector<std::string> kKeys = {"name",   "type",  "help",    "match",
                                                       "labels", "value", "buckets", "max_series"};
        const std::string k = kv.first.as<std::string>();
        if (std::find(kKeys.begin(), kKeys.end(), k) == kKeys.end()) {
          return Error{YamlWhere(source, kv.first.Mark()) + "unknown key '" + k + "'"};
        }
      }
      MetricRule rule;
      rule.name = r["name"] ? r["name"].as<std::string>() : "";
      if (!ValidName(rule.name)) {
        return Error{at + "name must match [a-zA-Z_][a-zA-Z0-9_]*"};
      }
      rule.type = r["type"] ? r["type"].as<std::string>() : "counter";
      if (rule.type != "counter" && rule.type != "gauge" && rule.type != "histogram") {
        return Error{YamlWhere(source, r["type"].Mark()) + "type must be counter, gauge or histogram"};
      }
      if (rule.type == "counter" && rule.name.ends_with("_total")) {
        rule.name.resize(rule.name.size() - 6);  // the exposition adds it back
      }
      rule.help = r["help"] ? r["help"].as<std::string>() : "Business metric from rule " + rule.name;
      if (const YAML::Node m = r["match"]) {
        if (!m.IsMap()) {
          return Error{YamlWhere(source, m.Mark()) + "match is a mapping of event, task, queue, worker"};
        }
        for (const auto& kv : m) {
          const std::string k = kv.first.as<std::string>();
          const std::string v = kv.second.as<std::string>();
          if (k == "event")
            rule.match_event = v;
          else if (k == "task")
            rule.match_task = v;
          else if (k == "queue")
            rule.match_queue = v;
          else if (k == "worker")
            rule.match_worker = v;
          else
            return Error{YamlWhere(source, kv.first.Mark()) + "match keys are event, task, queue, worker"};
        }
      }
      if (const YAML::Node l = r["labels"]) {
        if (!l.IsMap()) {
          return Error{YamlWhere(source, l.Mark()) + "labels is a mapping of label name to value"};
        }
        for (const auto& kv : l) {
          const std::string label = kv.first.as<std::string>();
          if (!ValidName(label) || label.starts_with("__") || label == "le") {
            return Error{YamlWhere(source, kv.first.Mark()) + "invalid label name '" + label + "'"};
          }
          auto ref = ParseRef(kv.second, source);
          if (!ref) {
            return Error{ref.error()};
          }
          rule.labels.emplace_back(label, *ref);
        }
      }
      if (r["value"]) {
        auto ref = ParseRef(r["value"], source);
        if (!ref) {
          return Error{ref.error()};
        }
        rule.value = *ref;
      } else if (rule.type != "counter") {
        return Error{at + rule.type + " rules need a value"};
      }
      if (rule.type == "histogram") {
        rule.buckets = r["buckets"] ? r["buckets"].as<std::vector<double>>()
                                    : std::vector<double>{0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000};
        if (rule.buckets.empty() || !std::is_sorted(rule.buckets.begin(), rule.buckets.end())) {
          return Error{at + "buckets must be increasing numbers"};
        }
      }
      if (r["max_series"]) {
        const int n = r["max_series"].as<int>();
        if (n < 1) {
          return Error{YamlWhere(source, r["max_series"].Mark()) + "max_series must be at least 1"};
        }
        rule.max_series = static_cast<size_t>(n);
      }
      for (const MetricRule& other : out) {
        if (other.name == rule.name) {
          return Error{at + "rule name '" + rule.name + "' is used twice"};
        }
      }
      out.push_back(std::move(rule));
    }
  } catch (const YAML::Exception& e) {
    return Error{YamlWhere(source, e.mark) + e.msg};
  }
  return out;
}

Result<size_t> MetricRules::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Error{"cannot read " + path};
  }
  std::stringstream buf;
  buf << in.rdbuf();
  auto parsed = Parse(buf.str(), path);
  if (!parsed) {
    return Error{parsed.error()};
  }
  std::lock_guard lock(mu_);
  std::vector<std::unique_ptr<Compiled>> next;
  for (MetricRule& rule : *parsed) {
    auto c = std::make_unique<Compiled>();
    // A rule that keeps its name and type keeps its series (counters do not restart on reload).
    for (auto& old : rules_) {
      if (old && old->rule.name == rule.name && old->rule.type == rule.type && old->rule.buckets == rule.buckets) {
        c->series = std::move(old->series);
        c->overflow = old->overflow;
      }
    }
    c->rule = std::move(rule);
    next.push_back(std::move(c));
  }
  rules_ = std::move(next);
  by_event_task_.clear();
  by_event_.clear();
  any_event_.clear();
  event_types_.clear();
  auto is_glob = [](const std::string& p) { return p.empty() || p.find_first_of("*?") != std::string::npos; };
  for (auto& c : rules_) {
    const std::string& ev = c->rule.match_event;
    if (is_glob(ev)) {
      any_event_.push_back(c.get());
    } else if (!is_glob(c->rule.match_task)) {
      by_event_task_[ev + '\x1f' + c->rule.match_task].push_back(c.get());
      event_types_.insert(ev);
    } else {
      by_event_[ev].push_back(c.get());
      event_types_.insert(ev);
    }
  }
  return rules_.size();
}

size_t MetricRules::rule_count() const {
  std::lock_guard lock(mu_);
  return rules_.size();
}

void MetricRules::OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState /*previous*/) {
  Evaluate(state, &task, ev);
}

void MetricRules::OnOtherEvent(const ClusterState& state, const Event& ev) { Evaluate(state, nullptr, ev); }

void MetricRules::Evaluate(const ClusterState& state, const Task* task, const Event& ev) {
  std::lock_guard lock(mu_);
  if (rules_.empty() ||
      (any_event_.empty() && !event_types_.contains(absl::string_view(ev.type.data(), ev.type.size())))) {
    return;
  }
  // Views into the state's interned strings: valid while the ingest thread holds the state lock.
  auto name_of = [&state](uint32_t id) { return id == kNoId ? std::string_view() : state.Name(id); };
  const std::string_view task_name = task ? name_of(task->name) : std::string_view();
  candidates_.clear();
  if (auto it = by_event_.find(absl::string_view(ev.type.data(), ev.type.size())); it != by_event_.end()) {
    candidates_.insert(candidates_.end(), it->second.begin(), it->second.end());
  }
  if (!by_event_task_.empty()) {
    lookup_.assign(ev.type);
    lookup_ += '\x1f';
    lookup_ += task_name;
    if (auto it = by_event_task_.find(lookup_); it != by_event_task_.end()) {
      candidates_.insert(candidates_.end(), it->second.begin(), it->second.end());
    }
  }
  for (Compiled* c : any_event_) {
    if (GlobMatch(c->rule.match_event, ev.type)) {
      candidates_.push_back(c);
    }
  }
  if (candidates_.empty()) {
    return;
  }
  const std::string_view queue = task ? name_of(task->queue) : std::string_view();
  const std::string_view worker = task && task->worker != kNoId ? name_of(task->worker) : ev.hostname;
  std::optional<nlohmann::json> fields;  // parsed once, when a rule reads them
  // Writes the referenced value's text into `out`; false when the event does not carry it.
  auto text_of = [&](const RuleValueRef& ref, std::string& out) -> bool {
    using S = RuleValueRef::Source;
    switch (ref.source) {
      case S::kConstant: {
        char buf[32];
        const int n = std::snprintf(buf, sizeof buf, "%g", ref.constant);
        out.assign(buf, static_cast<size_t>(n));
        return true;
      }
      case S::kName:
        out.assign(task_name);
        break;
      case S::kQueue:
        out.assign(queue);
        break;
      case S::kWorker:
        out.assign(worker);
        break;
      case S::kType:
        out.assign(ev.type);
        break;
      case S::kRuntime: {
        if (!ev.runtime)
          return false;
        char buf[32];
        const int n = std::snprintf(buf, sizeof buf, "%.9g", *ev.runtime);
        out.assign(buf, static_cast<size_t>(n));
        break;
      }
      case S::kArgs:
        if (!ev.args.has_value())
          return false;
        out.assign(ev.args.value);
        break;
      case S::kKwargs:
        if (!ev.kwargs.has_value())
          return false;
        out.assign(ev.kwargs.value);
        break;
      case S::kResult:
        if (!ev.result.has_value())
          return false;
        out.assign(ev.result.value);
        break;
      case S::kField: {
        if (!fields) {
          fields = ev.custom_json.empty() ? nlohmann::json() : nlohmann::json::parse(ev.custom_json, nullptr, false);
        }
        if (!fields->is_object())
          return false;
        auto it = fields->find(ref.key);
        if (it == fields->end() || it->is_null())
          return false;
        out = it->is_string() ? it->get<std::string>() : it->dump();
        break;
      }
    }
    if (ref.regex) {
      std::smatch m;
      if (!std::regex_search(out, m, *ref.regex) || m.size() < 2)
        return false;
      out = Unquote(m[1].str());
    }
    return true;
  };
  for (Compiled* c : candidates_) {
    const MetricRule& r = c->rule;
    if (!GlobMatch(r.match_task, task_name) || !GlobMatch(r.match_queue, queue) || !GlobMatch(r.match_worker, worker)) {
      continue;
    }
    key_.clear();
    for (size_t i = 0; i < r.labels.size(); ++i) {
      if (i > 0)
        key_ += '\x1f';
      if (text_of(r.labels[i].second, text_))
        key_ += text_;
    }
    double value = 1;
    if (r.value.source == RuleValueRef::Source::kConstant) {
      value = r.value.constant;
    } else if (r.value.source == RuleValueRef::Source::kRuntime && !r.value.regex) {
      if (!ev.runtime)
        continue;
      value = *ev.runtime;  // the number itself: no print and parse round trip
    } else {
      if (!text_of(r.value, text_))
        continue;
      if (text_ == "True") {
        value = 1;
      } else if (text_ == "False") {
        value = 0;
      } else {
        char* end = nullptr;
        value = std::strtod(text_.c_str(), &end);
        if (end == text_.c_str() || !std::isfinite(value))
          continue;
      }
    }
    auto it = c->series.find(key_);
    if (it == c->series.end()) {
      if (c->series.size() >= r.max_series) {
        ++c->overflow;
        continue;
      }
      it = c->series.emplace(key_, Series{}).first;
      it->second.bucket_counts.assign(r.buckets.size(), 0);
    }
    Series& s = it->second;
    if (r.type == "counter") {
      if (value > 0)
        s.value += value;  // counters never go down
    } else if (r.type == "gauge") {
      s.value = value;
    } else {
      for (size_t i = 0; i < r.buckets.size(); ++i) {
        if (value <= r.buckets[i])
          ++s.bucket_counts[i];
      }
      s.sum += value;
      ++s.count;
    }
  }
}

void MetricRules::Append(bool openmetrics, std::string& exposition) const {
  ExpositionWriter w(openmetrics, 4096);
  {
    std::lock_guard lock(mu_);
    if (rules_.empty()) {
      return;
    }
    for (const auto& c : rules_) {
      const MetricRule& r = c->rule;
      const std::string family = "stalk_biz_" + r.name;
      const MetricType type = r.type == "counter" ? MetricType::kCounter
                              : r.type == "gauge" ? MetricType::kGauge
                                                  : MetricType::kHistogram;
      w.Family(family, type, r.help);
      for (const auto& [key, s] : c->series) {
        auto labels = [&, key = std::string_view(key)] {
          size_t start = 0;
          for (size_t i = 0; i < r.labels.size(); ++i) {
            const size_t end = std::min(key.find('\x1f', start), key.size());
            w.LabelRaw(r.labels[i].first, key.substr(start, end - start));
            start = end + 1;
          }
        };
        if (r.type != "histogram") {
          w.Open();
          labels();
          w.Close(s.value);
          continue;
        }
        for (size_t i = 0; i < r.buckets.size(); ++i) {
          w.Open("_bucket");
          labels();
          char le[32];
          std::snprintf(le, sizeof le, "%g", r.buckets[i]);
          w.LabelRaw("le", le);
          w.Close(s.bucket_counts[i]);
        }
        w.Open("_bucket");
        labels();
        w.LabelRaw("le", "+Inf");
        w.Close(s.count);
        w.Open("_count");
        labels();
        w.Close(s.count);
        w.Open("_sum");
        labels();
        w.Close(s.sum);
      }
    }
    w.Family("stalk_metric_rule_overflow", MetricType::kCounter,
             "Matches a business-metric rule dropped because the rule reached max_series.");
    for (const auto& c : rules_) {
      w.Open();
      w.LabelRaw("rule", c->rule.name);
      w.Close(c->overflow);
    }
  }
  w.AppendTo(exposition);
}

}  // namespace stalk
