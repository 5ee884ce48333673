// Stalk — Celery monitoring server.
// RedisResultBackend: Celery's Redis result backend — key "celery-task-meta-<id>" holding JSON
// {status, result, traceback, children, date_done, task_id}. Writes mirror RedisBackend.set: SETEX
// with result_expires (Celery's default one day) and PUBLISH of the same value on the key's channel,
// which is how waiting Python clients learn of it. One connection (the backend URL's db), a mutex,
// reconnect on demand.
#pragma once

#include <atomic>
#include <mutex>
#include <optional>
#include <string>

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

  // A PING on the backend's connection (ResultBackendProbe), counted like any request.
  Result<bool> Ping();

  // Health, for /metrics, /healthcheck and the result_backend_errors alert rule: requests and
  // failures so far, and whether the last request (or probe) succeeded. Any thread.
  struct Health {
    bool up = true;  // until a request fails
    uint64_t requests = 0, errors = 0;
    std::string last_error;
    double last_error_at = 0;
  };
  Health health() const;
  // Why the backend is failing (its last request failed), or nullopt.
  std::optional<std::string> Problem() const;
  // stalk_result_backend_up, stalk_result_backend_requests_total, stalk_result_backend_errors_total.
  void RenderMetrics(bool openmetrics, std::string& out) const;

 private:
  Result<ReplyPtr> Run(const std::vector<std::string_view>& args);
  Result<ReplyPtr> RunCounted(const std::vector<std::string_view>& args);

  BrokerUrl url_;
  RedisResultBackendOptions options_;
  std::mutex mu_;
  RedisConnection conn_;
  std::atomic<uint64_t> requests_{0}, errors_{0};
  std::atomic<bool> up_{true};
  mutable std::mutex health_mu_;
  std::string last_error_;    // guarded by health_mu_
  double last_error_at_ = 0;  // guarded by health_mu_
};

// Parses a stored meta document (exposed for tests).
Result<TaskResultMeta> ParseResultMeta(std::string_view text);

}  // namespace stalk
