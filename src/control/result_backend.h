// Stalk — Celery monitoring server.
// ResultBackend: reading task results the way Celery's AsyncResult does, and marking a task ABORTED
// as AbortableAsyncResult.abort() does (Flower's /api/task/result and /api/task/abort). One
// implementation per backend kind (redis_result_backend.h); others answer "not supported".
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/result.h"

namespace stalk {

struct TaskResultMeta {
  bool found = false;  // false: the backend has nothing (Celery says PENDING)
  std::string state = "PENDING";
  nlohmann::json result;     // the stored result (a serialized exception for FAILURE/REVOKED)
  nlohmann::json traceback;  // string or null
};

class ResultBackend {
 public:
  virtual ~ResultBackend() = default;
  virtual Result<TaskResultMeta> Get(const std::string& task_id) = 0;
  // Stores state ABORTED (result and traceback null) unless the task already SUCCEEDED — Celery's
  // store_result never overwrites a success.
  virtual Result<bool> MarkAborted(const std::string& task_id) = 0;
};

// Celery's READY_STATES: the result is final.
bool IsReadyState(const std::string& state);

}  // namespace stalk
