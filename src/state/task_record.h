// Stalk — Celery monitoring server.
// TaskRecord / WorkerRecord: a task or worker as plain values (std::string, no interned ids, no
// CompactString), for what lives outside ClusterState: durable history (store/) writes them and reads
// them back, and ClusterState::Restore turns them into live records again. Same fields and null rules
// as the API's task JSON (state/task_json.h): absent text is std::nullopt, absent times are 0,
// unknown retries/runtime are -1. Not for hot paths: each record owns its strings.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json_writer.h"

namespace stalk {

class ClusterState;
struct Task;
struct Worker;

struct TaskRecord {
  std::string id;
  std::string state = "PENDING";  // TaskStateName, or the custom state's name
  std::optional<std::string> name, worker, client, queue, exchange, routing_key;
  double sent = 0, received = 0, started = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0, rejected = 0,
         timestamp = 0, lost_at = 0;
  double runtime = -1;
  int32_t retries = -1;
  int64_t clock = 0;
  bool lost = false;
  bool requeue = false;          // task-rejected with requeue=true (rejected without it is final)
  bool truncated = false;        // a text field was cut to the configured limit
  bool has_state_event = false;  // an event other than task-sent set its state
  std::optional<std::string> args, kwargs, result, exception, traceback, eta, expires, root_id, parent_id;
};

struct WorkerRecord {
  std::string hostname;
  double freq = 60, last_heartbeat = 0, offline_since = 0, utcoffset = 0;
  bool offline_event = false;  // worker-offline was its last word
  int64_t pid = 0, clock = 0, active = 0, processed = 0;
  bool has_loadavg = false;
  std::array<double, 3> loadavg{};
  std::string sw_ident, sw_ver, sw_sys;
  uint64_t events = 0, lost_tasks = 0;
};

// The record of a live task / worker (caller holds the state's read or write lock).
TaskRecord MakeTaskRecord(const ClusterState& st, const Task& t);
WorkerRecord MakeWorkerRecord(const Worker& w);

// Writes the task as WriteTaskJson would (same keys, same order) from a record; `children` are the
// ids of its child tasks. `with_task_id` adds Flower's "task-id" key.
void WriteTaskRecordJson(const TaskRecord& r, const std::vector<std::string>& children, JsonWriter& w,
                         bool with_task_id = false);

}  // namespace stalk
