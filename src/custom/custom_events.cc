// Stalk — Celery monitoring server.
#include "custom/custom_events.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/json_writer.h"
#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {

std::optional<double> CustomEvents::ProgressFrom(const std::string& fields_json) {
  auto doc = nlohmann::json::parse(fields_json, nullptr, false);
  if (!doc.is_object()) {
    return std::nullopt;
  }
  auto number = [&doc](const char* key) -> std::optional<double> {
    auto it = doc.find(key);
    if (it != doc.end() && it->is_number()) {
      return it->get<double>();
    }
    return std::nullopt;
  };
  std::optional<double> pct;
  if (auto p = number("progress")) {
    pct = *p <= 1.0 && *p >= 0 && doc["progress"].is_number_float() ? *p * 100 : *p;
  } else if (auto p2 = number("percent")) {
    pct = *p2;
  } else if (auto cur = number("current"), tot = number("total"); cur && tot && *tot > 0) {
    pct = *cur * 100 / *tot;
  } else if (auto meta = doc.find("meta"); meta != doc.end() && meta->is_object()) {
    // Celery's update_state(meta={'current': 3, 'total': 10}) convention, sent along by some apps.
    auto c = meta->find("current");
    auto t = meta->find("total");
    if (c != meta->end() && t != meta->end() && c->is_number() && t->is_number() && t->get<double>() > 0) {
      pct = c->get<double>() * 100 / t->get<double>();
    }
  }
  if (pct) {
    pct = std::clamp(*pct, 0.0, 100.0);
  }
  return pct;
}

void CustomEvents::Count(std::string_view type, const char* kind) {
  auto it = counts_.find(type);
  if (it == counts_.end()) {
    if (counts_.size() >= options_.max_types) {
      it = counts_.try_emplace("other", TypeCount{kind, 0}).first;
    } else {
      it = counts_.emplace(std::string(type), TypeCount{kind, 0}).first;
    }
  }
  ++it->second.count;
}

void CustomEvents::OnTaskEvent(const ClusterState& /*state*/, const Task& task, const Event& ev,
                               TaskState /*previous*/) {
  if (ev.kind != EventKind::kTaskCustom) {
    return;
  }
  CustomEventEntry entry{std::string(ev.type), ev.timestamp, std::string(ev.hostname), std::string(ev.custom_json)};
  std::optional<double> progress = ProgressFrom(entry.fields_json);
  if (entry.fields_json.size() > options_.max_fields_bytes) {
    entry.fields_json = nlohmann::json{{"truncated", true}, {"bytes", entry.fields_json.size()}}.dump();
  }
  const std::string id = task.IdString();
  std::lock_guard lock(mu_);
  Count(ev.type, "task");
  auto [it, inserted] = tasks_.try_emplace(id);
  if (inserted) {
    task_order_.push_back(id);
    if (task_order_.size() > options_.max_tasks) {
      tasks_.erase(task_order_.front());
      task_order_.pop_front();
    }
  }
  TaskCustomInfo& info = it->second;
  ++info.total_events;
  if (progress) {
    info.progress = progress;
  }
  info.events.push_back(std::move(entry));
  if (info.events.size() > options_.max_events_per_task) {
    info.events.pop_front();
  }
}

void CustomEvents::OnWorkerEvent(const ClusterState& /*state*/, const Worker& /*worker*/, const Event& ev) {
  if (ev.kind != EventKind::kWorkerCustom) {
    return;
  }
  std::lock_guard lock(mu_);
  Count(ev.type, "worker");
}

void CustomEvents::OnOtherEvent(const ClusterState& /*state*/, const Event& ev) {
  std::lock_guard lock(mu_);
  Count(ev.type, "other");
}

std::map<std::string, CustomEvents::TypeCount> CustomEvents::Counts() const {
  std::lock_guard lock(mu_);
  return {counts_.begin(), counts_.end()};
}

std::optional<TaskCustomInfo> CustomEvents::ForTask(const std::string& task_id) const {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) {
    return std::nullopt;
  }
  return it->second;
}

std::string CustomEvents::TaskJsonFields(const std::string& task_id) const {
  auto info = ForTask(task_id);
  if (!info) {
    return {};
  }
  JsonWriter w;
  w.BeginObject();
  w.Key("custom_events");
  w.BeginArray();
  for (const CustomEventEntry& e : info->events) {
    w.BeginObject();
    w.Field("type", e.type);
    w.Field("timestamp", e.timestamp);
    w.Field("hostname", e.hostname);
    w.Key("fields");
    w.Raw(e.fields_json.empty() ? std::string_view("{}") : std::string_view(e.fields_json));
    w.EndObject();
  }
  w.EndArray();
  w.Key("custom_events_total");
  w.Int(static_cast<int64_t>(info->total_events));
  w.Key("progress");
  if (info->progress) {
    w.Double(*info->progress);
  } else {
    w.Null();
  }
  w.EndObject();
  std::string text = w.Take();
  // Drop the braces: the caller splices these fields into the task's own object.
  return text.substr(1, text.size() - 2);
}

}  // namespace stalk
