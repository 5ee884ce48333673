// Stalk — Celery monitoring server.
// TaskQuery: Flower's /api/tasks filters, sort and paging, over ClusterState (caller holds the read
// lock). Same semantics as flower/utils/tasks.py iter_tasks: filters, then a stable sort, then
// offset/limit. Base order is newest task first (creation order), which keeps pages stable while
// tasks update. Search terms as flower/utils/search.py: `args:x kwargs:k=v result:x state:S free`,
// a task matches if any term matches.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "state/cluster_state.h"

namespace stalk {

struct TaskQuery {
  std::optional<size_t> limit;
  size_t offset = 0;
  std::string sort_by;  // name|state|received|started|succeeded|runtime|timestamp, '-' for descending
  std::string workername, taskname, state;  // "" or "All": no filter
  std::optional<double> received_start, received_end, started_start, started_end;
  std::string search;
};

// Parses Flower's "%Y-%m-%d %H:%M" (local time, as Flower's time.mktime) or epoch seconds.
std::optional<double> ParseQueryTime(std::string_view text);

// Errors: an unknown sort key.
Result<std::vector<const Task*>> RunTaskQuery(const ClusterState& state, const TaskQuery& q);

}  // namespace stalk
