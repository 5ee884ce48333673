// Stalk — Celery monitoring server.
#include "custom/sla_tracker.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/glob.h"
#include "custom/yaml_where.h"
#include "metrics/exposition_writer.h"
#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

// "90", "90s", "1.5m", "2h" -> seconds; negative or malformed: nullopt.
std::optional<double> Seconds(std::string text) {
  double unit = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 's':
        text.pop_back();
        break;
      case 'm':
        unit = 60;
        text.pop_back();
        break;
      case 'h':
        unit = 3600;
        text.pop_back();
        break;
      default:
        break;
    }
  }
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v <= 0)
    return std::nullopt;
  return v * unit;
}

}  // namespace

Result<std::vector<SlaTarget>> SlaTracker::Parse(const std::string& text, const std::string& source) {
  std::vector<SlaTarget> out;
  try {
    const YAML::Node root = YAML::Load(text);
    if (!root.IsMap() || !root["sla"])
      return out;
    const YAML::Node sla = root["sla"];
    if (!sla.IsSequence())
      return Error{YamlWhere(source, sla.Mark()) + "`sla:` must be a list of {task, target}"};
    for (const YAML::Node& n : sla) {
      if (!n.IsMap())
        return Error{YamlWhere(source, n.Mark()) + "an SLA entry is a mapping {task, target}"};
      SlaTarget t;
      for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        if (k == "task") {
          t.task = kv.second.as<std::string>();
        } else if (k == "target") {
          auto s = Seconds(kv.second.as<std::string>());
          if (!s) {
            return Error{YamlWhere(source, kv.second.Mark()) + "target must be a positive duration (e.g. 30s, 5m, 1h)"};
          }
          t.target = *s;
        } else {
          return Error{YamlWhere(source, kv.first.Mark()) + "unknown key '" + k + "' in an SLA entry (task, target)"};
        }
      }
      if (t.task.empty() || t.target <= 0) {
        return Error{YamlWhere(source, n.Mark()) + "an SLA entry needs task and target"};
      }
      out.push_back(std::move(t));
    }
  } catch (const YAML::Exception& e) {
    return Error{YamlWhere(source, e.mark) + e.msg};
  }
  return out;
}

Result<size_t> SlaTracker::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return Error{"cannot read " + path};
  std::stringstream buf;
  buf << in.rdbuf();
  auto parsed = Parse(buf.str(), path);
  if (!parsed)
    return Error{parsed.error()};
  const size_t n = parsed->size();
  SetTargets(std::move(*parsed));
  return n;
}

void SlaTracker::SetTargets(std::vector<SlaTarget> targets) {
  std::lock_guard lock(mu_);
  targets_ = std::move(targets);
  by_name_.clear();  // names are matched again on their next run
  // Keep the counts of names whose target is unchanged; the others restart.
  std::vector<SlaRow> kept;
  for (auto& row : rows_) {
    for (const auto& t : targets_) {
      if (GlobMatch(t.task, row.name)) {
        if (t.target == row.target)
          kept.push_back(std::move(row));
        break;
      }
    }
  }
  rows_ = std::move(kept);
}

void SlaTracker::OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) {
  if (ev.kind != EventKind::kTaskSucceeded && ev.kind != EventKind::kTaskFailed)
    return;
  if (previous == TaskState::kSuccess || previous == TaskState::kFailure)
    return;  // counted once
  if (task.name == kNoId)
    return;
  std::lock_guard lock(mu_);
  if (targets_.empty())
    return;
  auto [it, created] = by_name_.try_emplace(task.name, -1);
  if (created) {
    const std::string_view name = state.Name(task.name);
    for (const auto& t : targets_) {
      if (!GlobMatch(t.task, name))
        continue;
      for (size_t i = 0; i < rows_.size(); ++i) {
        if (rows_[i].name == name)
          it->second = static_cast<int32_t>(i);
      }
      if (it->second < 0) {
        rows_.push_back(SlaRow{std::string(name), t.target, 0, 0, 0});
        it->second = static_cast<int32_t>(rows_.size() - 1);
      }
      break;
    }
  }
  if (it->second < 0)
    return;
  SlaRow& row = rows_[static_cast<size_t>(it->second)];
  if (ev.kind == EventKind::kTaskFailed) {
    ++row.failed;
    return;
  }
  double runtime = -1;
  if (ev.runtime && *ev.runtime >= 0) {
    runtime = *ev.runtime;
  } else {
    const double from = task.started > 0 ? task.started : task.received;
    if (from > 0 && ev.timestamp >= from)
      runtime = ev.timestamp - from;
  }
  if (runtime < 0)
    return;  // nothing to judge by
  (runtime <= row.target ? row.within : row.over)++;
}

std::vector<SlaRow> SlaTracker::Snapshot() const {
  std::vector<SlaRow> out;
  {
    std::lock_guard lock(mu_);
    out = rows_;
  }
  std::sort(out.begin(), out.end(), [](const SlaRow& a, const SlaRow& b) { return a.name < b.name; });
  return out;
}

size_t SlaTracker::target_count() const {
  std::lock_guard lock(mu_);
  return targets_.size();
}

void SlaTracker::Append(bool openmetrics, std::string& exposition) const {
  const auto rows = Snapshot();
  if (rows.empty())
    return;
  ExpositionWriter w(openmetrics, 1024);
  w.Family("stalk_task_sla_runs", MetricType::kCounter,
           "Finished runs of tasks with an SLA target (--metric_rules sla:), by outcome: within or over the "
           "target, or failed.");
  for (const auto& r : rows) {
    for (auto [outcome, v] :
         {std::pair{"within", r.within}, std::pair{"over", r.over}, std::pair{"failed", r.failed}}) {
      w.Open();
      w.LabelRaw("name", r.name);
      w.Label("outcome", outcome);
      w.Close(v);
    }
  }
  w.Family("stalk_task_sla_ratio", MetricType::kGauge,
           "Share of a task's finished runs within its SLA target (1 before any run).");
  for (const auto& r : rows) {
    w.Open();
    w.LabelRaw("name", r.name);
    w.Close(r.ratio());
  }
  w.Family("stalk_task_sla_target_seconds", MetricType::kGauge, "A task's SLA runtime target.");
  for (const auto& r : rows) {
    w.Open();
    w.LabelRaw("name", r.name);
    w.Close(r.target);
  }
  w.AppendTo(exposition);
}

}  // namespace stalk
