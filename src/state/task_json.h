// Stalk — Celery monitoring server.
// JSON renderings of tasks and workers with Flower's field names and value types
// (celery.events.state.Task.as_dict(), with `worker` as the hostname), plus Stalk's `lost`/`lost_at`.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/json_writer.h"
#include "state/cluster_state.h"

namespace stalk {

// Writes `key`: the timestamp, or null when it is unset (Stalk keeps 0 for "never happened").
void WriteTimeOrNull(JsonWriter& w, std::string_view key, double v);

// Writes one task object. `with_task_id` adds Flower's "task-id" key (used by /api/task/info).
void WriteTaskJson(const ClusterState& st, const Task& t, JsonWriter& w, bool with_task_id = false);

// Writes one worker object as Stalk knows it from events (status, heartbeat fields, counts).
// `inspected` adds Flower's remote-inspection fields (stats, active_queues, registered, scheduled,
// active, reserved, revoked, conf, timestamp) as (key, JSON text) pairs; an inspected `active` (the
// list of executing tasks, Flower's shape) replaces the heartbeat's count of the same name.
using InspectedFields = std::vector<std::pair<std::string, std::string>>;
void WriteWorkerJson(const ClusterState& st, const Worker& wk, double now, JsonWriter& w,
                     const InspectedFields* inspected = nullptr);

}  // namespace stalk
