// Stalk — Celery monitoring server.
// Task and Worker records and the task state enum. A Task is what Flower's Task.as_dict() shows, kept
// compact: ids as 16 bytes, names/hostnames as interned ids, text fields as CompactString, absent
// timestamps as 0 (Celery's events never carry a 0 epoch).
#pragma once

#include <absl/container/flat_hash_set.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/task_id.h"
#include "state/compact_string.h"

namespace stalk {

// Numbers are stable (stored, and used as array indexes).
enum class TaskState : uint8_t {
  kPending = 0,
  kReceived = 1,
  kStarted = 2,
  kSuccess = 3,
  kFailure = 4,
  kRetry = 5,
  kRevoked = 6,
  kRejected = 7,
  kCustom = 8,  // Task::custom_state names it (e.g. "PROGRESS" for task-progress)
};
constexpr size_t kTaskStateCount = 9;

std::string_view TaskStateName(TaskState s);
// Parses "SUCCESS" etc.; returns false for anything else (custom states are looked up by name).
bool ParseTaskState(std::string_view name, TaskState& out);
// Celery's celery.states.PRECEDENCE index: lower wins.
int Precedence(TaskState s);
// SUCCESS, FAILURE, REVOKED (Celery's READY_STATES) plus REJECTED without requeue (Stalk: also final).
bool IsFinal(TaskState s);

constexpr uint32_t kNoId = UINT32_MAX;

struct Task {
  Uuid id{};
  uint64_t seq = 0;  // creation order; position in ClusterState's ring
  uint32_t name = kNoId;
  uint32_t worker = kNoId;
  uint32_t client = kNoId;        // hostname of the task-sent sender
  uint32_t custom_state = kNoId;  // interned state name when state == kCustom
  uint32_t exchange = kNoId;
  uint32_t routing_key = kNoId;
  uint32_t queue = kNoId;
  TaskState state = TaskState::kPending;
  bool has_state_event = false;  // any event other than task-sent applied a state
  bool text_id = false;          // id is not a uuid: see text_key
  bool has_root = false, has_parent = false;
  bool lost = false;     // its worker went offline while it was unfinished (Stalk, protocol §8)
  bool requeue = false;  // task-rejected with requeue=true
  bool truncated = false;
  int32_t retries = -1;  // -1: unknown (null)
  int64_t clock = 0;
  double timestamp = 0;  // time of the event that set the current state
  double sent = 0, received = 0, started = 0, succeeded = 0, failed = 0, retried = 0, revoked = 0, rejected = 0,
         lost_at = 0;
  double runtime = -1;  // -1: unknown
  Uuid root{}, parent{};
  CompactString args, kwargs, result, exception, traceback, eta, expires;
  // Ids that are not uuids (custom task ids): rare, so kept out of line — 8 bytes a task, not 24.
  struct TextIds {
    CompactString id, root, parent;
  };
  std::unique_ptr<TextIds> text_ids;

  TextIds& MutableTextIds() {
    if (!text_ids) {
      text_ids = std::make_unique<TextIds>();
    }
    return *text_ids;
  }
  // The text form of the id / root / parent when not a uuid; null CompactString otherwise.
  const CompactString& text_key() const { return text_ids ? text_ids->id : kNullText; }
  const CompactString& root_text() const { return text_ids ? text_ids->root : kNullText; }
  const CompactString& parent_text() const { return text_ids ? text_ids->parent : kNullText; }

  std::string IdString() const;
  // Writes the id into `buf` (36 bytes is enough for a uuid) and returns it; text ids are returned as
  // a view of the task's own storage. No allocation: for scans over all tasks.
  std::string_view IdView(char (&buf)[36]) const;

  static const CompactString kNullText;
};

struct Worker {
  std::string hostname;
  double freq = 60;            // Celery's Worker default until a worker-* event brings the real one
  double last_heartbeat = 0;   // local receive time of the last event from it; 0 = never
  bool offline_event = false;  // worker-offline received
  bool alive = false;          // as of the last Tick
  double offline_since = 0;
  int64_t active = 0, processed = 0, pid = 0, clock = 0;
  double utcoffset = 0;
  std::array<double, 3> loadavg{};
  bool has_loadavg = false;
  std::string sw_ident, sw_ver, sw_sys;
  uint64_t events = 0;
  uint64_t lost_tasks = 0;
  // Unfinished tasks (RECEIVED/STARTED/RETRY/custom) on this worker, by seq: the source of the
  // executing and prefetched gauges, which therefore cannot drift.
  absl::flat_hash_set<uint64_t> unfinished;
};

}  // namespace stalk
