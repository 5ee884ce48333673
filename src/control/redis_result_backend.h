// Stalk — Celery monitoring server.
// RedisResultBackend: Celery's Redis result backend — key "celery-task-meta-<id>" holding JSON
// {status, result, traceback, children, date_done, task_id}. Writes mirror RedisBackend.set: SETEX
// with result_expires (Celery's default one day) and PUBLISH of the same value on the key's channel,
// which is how waiting Python clients learn of it. One connection (the backend URL's db), a mutex,
// reconnect on demand.
#pragma once

#include <mutex>

#include "control/result_backend.h"
#include "transport/broker_url.h"
#include "transport/redis_connection.h"

namespace stalk {

struct RedisResultBackendOptions {
  int timeout_ms = 3000;
  int result_expires_seconds = 86400;  // Celery's result_expires default
};

class RedisResultBackend : public ResultBackend {
 public:
  RedisResultBackend(BrokerUrl url, RedisResultBackendOptions options);
  Result<TaskResultMeta> Get(const std::string& task_id) override;
  Result<bool> MarkAborted(const std::string& task_id) override;

  static std::string KeyFor(const std::string& task_id) { return "celery-task-meta-" + task_id; }

 private:
  Result<ReplyPtr> Run(const std::vector<std::string_view>& args);

  BrokerUrl url_;
  RedisResultBackendOptions options_;
  std::mutex mu_;
  RedisConnection conn_;
};

// Parses a stored meta document (exposed for tests).
Result<TaskResultMeta> ParseResultMeta(std::string_view text);

}  // namespace stalk
