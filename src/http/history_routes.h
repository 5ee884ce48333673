// Stalk — Celery monitoring server.
// GET /api/stalk/history: search the durable history (store/), beyond what the live state holds —
// older tasks, evicted ones, those from before a restart or from other instances sharing PostgreSQL.
// Filters as /api/tasks names them (state, taskname, workername, search, received_start/_end), newest
// first by timestamp, `before=<timestamp>` for the next page; the answer has /api/tasks's shape.
#pragma once

#include <functional>
#include <vector>

#include "common/result.h"
#include "http/router.h"
#include "store/store.h"

namespace stalk {

struct HistoryApi {
  std::function<Result<std::vector<TaskRecord>>(const TaskSearch&)> search;  // empty: no store (404)
};

void RegisterHistoryApi(Router& router, const HistoryApi& api);

}  // namespace stalk
