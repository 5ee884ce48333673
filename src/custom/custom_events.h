// Stalk — Celery monitoring server.
// CustomEvents: what Celery's own state machine ignores. Every event type Stalk does not know is
// counted by type (bounded: past 500 types the rest count as "other"); a task's custom events
// (`self.send_event('task-progress', current=3, total=10)`) are kept on that task, the last 20 per
// task for the last 100,000 tasks that sent any, and a `task-progress`-style event sets the task's
// progress (0-100) from `progress`/`percent`, or `current`/`total`. A StateListener: called on the
// ingest thread (quick, bounded work); read from HTTP threads under its own mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "state/state_listener.h"

namespace stalk {

struct CustomEventEntry {
  std::string type;
  double timestamp = 0;
  std::string hostname;
  std::string fields_json;  // the whole event object (truncated past 4 KiB, marked)
};

struct TaskCustomInfo {
  std::deque<CustomEventEntry> events;  // oldest first
  std::optional<double> progress;       // percent, 0-100
  uint64_t total_events = 0;            // including those no longer kept
};

struct CustomEventsOptions {
  size_t max_types = 500;
  size_t max_tasks = 100000;
  size_t max_events_per_task = 20;
  size_t max_fields_bytes = 4096;
};

class CustomEvents : public StateListener {
 public:
  explicit CustomEvents(CustomEventsOptions options = {}) : options_(options) {}

  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  void OnWorkerEvent(const ClusterState& state, const Worker& worker, const Event& ev) override;
  void OnOtherEvent(const ClusterState& state, const Event& ev) override;

  // Counts by event type (custom types only), and the kind: "task", "worker" or "other".
  struct TypeCount {
    std::string kind;
    uint64_t count = 0;
  };
  std::map<std::string, TypeCount> Counts() const;
  std::optional<TaskCustomInfo> ForTask(const std::string& task_id) const;
  // `"custom_events":[...],"progress":x` for /api/task/info ("" when the task sent none).
  std::string TaskJsonFields(const std::string& task_id) const;

  // Parses a progress percentage out of an event's JSON (nullopt when it carries none).
  static std::optional<double> ProgressFrom(const std::string& fields_json);

 private:
  void Count(std::string_view type, const char* kind);

  CustomEventsOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, TypeCount, std::less<>> counts_;
  std::unordered_map<std::string, TaskCustomInfo> tasks_;
  std::deque<std::string> task_order_;  // first-seen order, for eviction
};

}  // namespace stalk
