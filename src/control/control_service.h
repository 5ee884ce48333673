// Stalk — Celery monitoring server.
// ControlService: the operations behind Flower's control, inspect and task-sending routes, as
// testable functions returning a ControlOutcome (a status and a JSON body); http/control_routes.cc
// only parses parameters and maps ControlStatus to HTTP codes. Every action is written to the
// "audit" log with what, target, parameters and result.
//
// Blocking: an operation that waits for worker replies or a task result holds the calling thread up
// to the inspect timeout (or the result wait). At most `max_blocking_calls` such operations run at
// once — a caller beyond that gets kBusy at once — so they can never occupy every HTTP thread. The
// state lock is only taken for quick lookups, never while waiting on the broker.
//
// Deviations from Flower, by design:
//  - "unknown worker" means unknown to the live state, the inspect cache and a ping (Flower looks
//    only at its inspect cache, so a worker it has not inspected yet is "unknown");
//  - a worker that does not answer within the timeout is kNoReply (HTTP 504), not Flower's 403;
//  - Stalk has no task registry: a task name is unknown (404) when workers report their registered
//    tasks and none lists it; when no worker reports, the name is accepted;
//  - /api/task/apply waits at most `max_result_wait_seconds` (Flower waits forever).
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/audit_log.h"
#include "common/result.h"
#include "control/control_transport.h"
#include "control/inspect_cache.h"
#include "control/result_backend.h"
#include "control/task_message.h"
#include "state/shared_state.h"

namespace stalk {

enum class ControlStatus {
  kOk,           // 200
  kBadRequest,   // 400: invalid parameter or body
  kNotFound,     // 404: unknown worker or task name
  kFailed,       // 403: the worker answered with an error (Flower's status)
  kNoReply,      // 504: no answer within the timeout
  kUnavailable,  // 503: broker or result backend unreachable, or no result backend
  kBusy,         // 503: too many blocking control calls in progress
};

struct ControlOutcome {
  ControlStatus status = ControlStatus::kOk;
  nlohmann::json body;  // {"message": ...}, {"error": ...}, or the route's reply object
};

struct ControlServiceOptions {
  int inspect_timeout_ms = 1000;        // --inspect_timeout (idle timeout between replies)
  int max_blocking_calls = 1;           // concurrent waiting operations (HTTP threads - 1, at least 1)
  int default_apply_wait_seconds = 30;  // /api/task/apply without ?timeout=
  int max_result_wait_seconds = 300;    // cap on any wait for a task result
  int result_poll_ms = 100;             // result backend polling interval while waiting
};

class ControlService {
 public:
  // `backend` may be null (no supported result backend): result routes answer kUnavailable.
  ControlService(ControlTransport& transport, ResultBackend* backend, InspectCache& cache, SharedState& state,
                 ControlServiceOptions options, std::function<double()> now);

  // ---- workers (Flower's /api/worker/...) ----
  ControlOutcome Shutdown(const std::string& worker);
  ControlOutcome PoolRestart(const std::string& worker);
  ControlOutcome PoolGrow(const std::string& worker, int n);
  ControlOutcome PoolShrink(const std::string& worker, int n);
  ControlOutcome Autoscale(const std::string& worker, int min, int max);
  ControlOutcome AddConsumer(const std::string& worker, const std::string& queue);
  ControlOutcome CancelConsumer(const std::string& worker, const std::string& queue);

  // ---- tasks (Flower's /api/task/...) ----
  ControlOutcome Revoke(const std::string& task_id, bool terminate, const std::string& signal);
  ControlOutcome RateLimit(const std::string& task_name, const std::string& worker, const std::string& rate);
  ControlOutcome TimeLimit(const std::string& task_name, const std::string& worker, std::optional<double> soft,
                           std::optional<double> hard);
  // async-apply (check_registered) and send-task: publish, answer {"task-id", "state"}.
  ControlOutcome SendTask(TaskSpec spec, bool check_registered, const std::string& action);
  // apply: publish, then wait up to `wait_seconds` (0: the default) for the result.
  ControlOutcome ApplyTask(TaskSpec spec, double wait_seconds);
  // result: {"task-id", "state"[, "result"[, "traceback"]]}; waits up to `wait_seconds` when > 0.
  ControlOutcome TaskResult(const std::string& task_id, double wait_seconds);
  ControlOutcome AbortTask(const std::string& task_id);

  // ---- inspection ----
  // Runs the cached inspect methods on one worker (or all when empty) and updates the cache.
  // Returns the hostnames that answered.
  Result<std::vector<std::string>> RefreshWorkers(const std::string& worker);
  // As RefreshWorkers, gated like the other blocking calls (for HTTP threads).
  ControlOutcome RefreshWorkersGated(const std::string& worker);
  // One inspect command ({hostname: reply}); `worker` empty: all workers.
  ControlOutcome Inspect(const std::string& method, const std::string& worker, const nlohmann::json& arguments);

  InspectCache& cache() { return cache_; }
  const ControlServiceOptions& options() const { return options_; }
  // Every control action is also recorded here (who, what, target, result); call before serving.
  void SetAuditLog(AuditLog* audit) { audit_ = audit; }

 private:
  class Gate;
  ControlOutcome WorkerCommand(const std::string& action, const std::string& worker, ControlRequest request,
                               const std::function<std::string(const nlohmann::json& ok)>& on_ok,
                               const std::string& failure_text);
  // Known from events, from the inspect cache, or answering a ping now.
  bool KnownWorker(const std::string& worker);
  // true/false when workers report registered tasks; nullopt when none does.
  std::optional<bool> TaskRegistered(const std::string& task_name);
  Result<TaskResultMeta> WaitForResult(const std::string& task_id, double wait_seconds);
  ControlOutcome Publish(TaskSpec& spec);
  CollectOptions Collect() const;
  void Audit(const std::string& action, const std::string& target, const std::string& params,
             const ControlOutcome& outcome) const;

  ControlTransport& transport_;
  ResultBackend* backend_;
  InspectCache& cache_;
  SharedState& state_;
  ControlServiceOptions options_;
  std::function<double()> now_;
  EventSender sender_;
  std::atomic<int> blocking_calls_{0};
  std::atomic<int64_t> event_clock_{0};
  AuditLog* audit_ = nullptr;
};

// Flower's text for a result (update_response_result): the stored value, or the exception's repr for
// FAILURE/RETRY/REVOKED; adds "traceback" for FAILURE.
void AddResultFields(const TaskResultMeta& meta, nlohmann::json& response);

}  // namespace stalk
