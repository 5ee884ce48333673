// Stalk — Celery monitoring server.
#include "control/control_service.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common/log.h"
#include "control/kombu_message.h"
#include "control/python_repr.h"

namespace stalk {
namespace {

ControlOutcome Outcome(ControlStatus status, const std::string& key, const std::string& text) {
  return ControlOutcome{status, nlohmann::json{{key, text}}};
}
ControlOutcome Message(const std::string& text) { return Outcome(ControlStatus::kOk, "message", text); }
ControlOutcome Failure(ControlStatus status, const std::string& text) { return Outcome(status, "error", text); }

const char* StatusName(ControlStatus s) {
  switch (s) {
    case ControlStatus::kOk:
      return "ok";
    case ControlStatus::kBadRequest:
      return "bad-request";
    case ControlStatus::kNotFound:
      return "not-found";
    case ControlStatus::kFailed:
      return "failed";
    case ControlStatus::kNoReply:
      return "no-reply";
    case ControlStatus::kUnavailable:
      return "unavailable";
    case ControlStatus::kBusy:
      return "busy";
  }
  return "?";
}

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

// Celery's error_reason: the worker's {"error": ...}, else "Unknown reason".
std::string ErrorReason(const nlohmann::json& reply) {
  if (reply.is_object()) {
    if (auto e = reply.find("error"); e != reply.end()) {
      return e->is_string() ? e->get<std::string>() : DumpJson(*e);
    }
  }
  return "Unknown reason";
}

std::string OkText(const nlohmann::json& ok) { return ok.is_string() ? ok.get<std::string>() : DumpJson(ok); }

bool ValidSignal(const std::string& s) {
  if (s.empty() || s.size() > 16)
    return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); });
}

}  // namespace

// Counts blocking operations in flight; a caller past the limit is turned away, never queued.
class ControlService::Gate {
 public:
  explicit Gate(ControlService& s) : s_(s) {
    entered_ = s_.blocking_calls_.fetch_add(1) < s_.options_.max_blocking_calls;
    if (!entered_)
      s_.blocking_calls_.fetch_sub(1);
  }
  ~Gate() {
    if (entered_)
      s_.blocking_calls_.fetch_sub(1);
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  bool entered() const { return entered_; }

 private:
  ControlService& s_;
  bool entered_ = false;
};

ControlService::ControlService(ControlTransport& transport, ResultBackend* backend, InspectCache& cache,
                               SharedState& state, ControlServiceOptions options, std::function<double()> now)
    : transport_(transport),
      backend_(backend),
      cache_(cache),
      state_(state),
      options_(options),
      now_(std::move(now)),
      sender_(LocalEventSender()) {
  options_.max_blocking_calls = std::max(1, options_.max_blocking_calls);
}

CollectOptions ControlService::Collect() const {
  CollectOptions c;
  c.idle_timeout_ms = std::max(1, options_.inspect_timeout_ms);
  return c;
}

void ControlService::Audit(const std::string& action, const std::string& target, const std::string& params,
                           const ControlOutcome& outcome) const {
  std::string text;
  if (outcome.body.is_object()) {
    for (const char* key : {"message", "error"}) {
      if (auto it = outcome.body.find(key); it != outcome.body.end() && it->is_string())
        text = it->get<std::string>();
    }
  }
  auto log = Logger("audit");
  log->info("{} target={} params={} result={}{}{}", action, target, params.empty() ? "{}" : params,
            StatusName(outcome.status), text.empty() ? "" : ": ", text);
  if (audit_ != nullptr) {
    AuditEntry e;
    e.at = now_();
    e.action = action;
    e.target = target;
    e.params = params.empty() ? "{}" : params;
    e.result = StatusName(outcome.status);
    e.message = text;
    audit_->Record(std::move(e));
  }
}

static ControlOutcome BusyOutcome() {
  return Failure(ControlStatus::kBusy, "too many control calls are waiting on workers; retry shortly");
}

// ------------------------------------------------------------------ lookups

bool ControlService::KnownWorker(const std::string& worker) {
  if (worker.empty())
    return false;
  {
    auto st = state_.Read();
    if (st->FindWorker(worker))
      return true;
  }
  if (cache_.Knows(worker))
    return true;
  ControlRequest ping{"ping", nlohmann::json::object(), {worker}, true, 1};
  auto r = transport_.Broadcast(ping, Collect());
  return r && std::any_of(r->begin(), r->end(), [&](const ControlReply& x) { return x.hostname == worker; });
}

std::optional<bool> ControlService::TaskRegistered(const std::string& task_name) {
  if (cache_.IsRegistered(task_name) == true)
    return true;
  // Unknown or never reported: ask the workers once for fresh lists.
  ControlRequest req{"registered", nlohmann::json{{"taskinfoitems", nlohmann::json::array()}}, {}, true, 0};
  if (auto r = transport_.Broadcast(req, Collect())) {
    cache_.Update("registered", *r, now_());
  }
  return cache_.IsRegistered(task_name);
}

// ------------------------------------------------------------------ worker commands

ControlOutcome ControlService::WorkerCommand(const std::string& action, const std::string& worker,
                                             ControlRequest request,
                                             const std::function<std::string(const nlohmann::json&)>& on_ok,
                                             const std::string& failure_text) {
  const std::string params = DumpJson(request.arguments);
  auto finish = [&](ControlOutcome o) {
    Audit(action, worker, params, o);
    return o;
  };
  Gate gate(*this);
  if (!gate.entered())
    return finish(BusyOutcome());
  if (!KnownWorker(worker))
    return finish(Failure(ControlStatus::kNotFound, "Unknown worker " + Quoted(worker)));
  request.destination = {worker};
  request.reply = true;
  auto replies = transport_.Broadcast(request, Collect());
  if (!replies)
    return finish(Failure(ControlStatus::kUnavailable, "cannot reach the broker: " + replies.error()));
  for (const ControlReply& r : *replies) {
    if (r.hostname != worker)
      continue;
    if (r.body.is_object() && r.body.contains("ok"))
      return finish(Message(on_ok(r.body["ok"])));
    return finish(Failure(ControlStatus::kFailed, failure_text + ErrorReason(r.body)));
  }
  return finish(Failure(ControlStatus::kNoReply, "no reply from " + Quoted(worker) + " within " +
                                                     std::to_string(options_.inspect_timeout_ms) + " ms"));
}

ControlOutcome ControlService::Shutdown(const std::string& worker) {
  auto finish = [&](ControlOutcome o) {
    Audit("shutdown", worker, "", o);
    return o;
  };
  Gate gate(*this);
  if (!gate.entered())
    return finish(BusyOutcome());
  if (!KnownWorker(worker))
    return finish(Failure(ControlStatus::kNotFound, "Unknown worker " + Quoted(worker)));
  // Celery's shutdown never replies (the worker raises SystemExit), so do not wait for one.
  ControlRequest req{"shutdown", nlohmann::json::object(), {worker}, false, 0};
  auto r = transport_.Broadcast(req, Collect());
  if (!r)
    return finish(Failure(ControlStatus::kUnavailable, "cannot reach the broker: " + r.error()));
  return finish(Message("Shutting down!"));
}

ControlOutcome ControlService::PoolRestart(const std::string& worker) {
  return WorkerCommand(
      "pool_restart", worker, {"pool_restart", {{"reload", false}}},
      [&](const nlohmann::json&) { return "Restarting " + Quoted(worker) + " worker's pool"; },
      "Failed to restart the " + Quoted(worker) + " pool: ");
}

ControlOutcome ControlService::PoolGrow(const std::string& worker, int n) {
  return WorkerCommand(
      "pool_grow", worker, {"pool_grow", {{"n", n}}},
      [&](const nlohmann::json&) { return "Growing " + Quoted(worker) + " worker's pool by " + std::to_string(n); },
      "Failed to grow " + Quoted(worker) + " worker's pool: ");
}

ControlOutcome ControlService::PoolShrink(const std::string& worker, int n) {
  return WorkerCommand(
      "pool_shrink", worker, {"pool_shrink", {{"n", n}}},
      [&](const nlohmann::json&) { return "Shrinking " + Quoted(worker) + " worker's pool by " + std::to_string(n); },
      "Failed to shrink " + Quoted(worker) + " worker's pool: ");
}

ControlOutcome ControlService::Autoscale(const std::string& worker, int min, int max) {
  return WorkerCommand(
      "autoscale", worker, {"autoscale", {{"min", min}, {"max", max}}},
      [&](const nlohmann::json&) {
        return "Autoscaling " + Quoted(worker) + " worker (min=" + std::to_string(min) +
               ", max=" + std::to_string(max) + ")";
      },
      "Failed to autoscale " + Quoted(worker) + " worker: ");
}

ControlOutcome ControlService::AddConsumer(const std::string& worker, const std::string& queue) {
  return WorkerCommand("add_consumer", worker, {"add_consumer", {{"queue", queue}}}, OkText,
                       "Failed to add " + Quoted(queue) + " consumer to " + Quoted(worker) + " worker: ");
}

ControlOutcome ControlService::CancelConsumer(const std::string& worker, const std::string& queue) {
  return WorkerCommand("cancel_consumer", worker, {"cancel_consumer", {{"queue", queue}}}, OkText,
                       "Failed to cancel " + Quoted(queue) + " consumer from " + Quoted(worker) + " worker: ");
}

// ------------------------------------------------------------------ task commands

ControlOutcome ControlService::Revoke(const std::string& task_id, bool terminate, const std::string& signal) {
  const nlohmann::json args = {{"task_id", task_id}, {"terminate", terminate}, {"signal", signal}};
  auto finish = [&](ControlOutcome o) {
    Audit("revoke", task_id, DumpJson(args), o);
    return o;
  };
  if (task_id.empty())
    return finish(Failure(ControlStatus::kBadRequest, "missing task id"));
  if (!ValidSignal(signal)) {
    return finish(Failure(ControlStatus::kBadRequest, "invalid signal " + Quoted(signal) + " (e.g. SIGTERM, SIGKILL)"));
  }
  // As Flower (Control.revoke): to every worker, no reply awaited.
  auto r = transport_.Broadcast(ControlRequest{"revoke", args, {}, false, 0}, Collect());
  if (!r)
    return finish(Failure(ControlStatus::kUnavailable, "cannot reach the broker: " + r.error()));
  return finish(Message("Revoked " + Quoted(task_id)));
}

ControlOutcome ControlService::RateLimit(const std::string& task_name, const std::string& worker,
                                         const std::string& rate) {
  const std::string action = "rate_limit";
  const nlohmann::json args = {{"task_name", task_name}, {"rate_limit", rate}};
  {
    Gate gate(*this);
    if (!gate.entered())
      return BusyOutcome();
    if (TaskRegistered(task_name) == false) {
      auto o = Failure(ControlStatus::kNotFound, "Unknown task " + Quoted(task_name));
      Audit(action, worker, DumpJson(args), o);
      return o;
    }
  }
  return WorkerCommand(action, worker, {"rate_limit", args}, OkText, "Failed to set rate limit: ");
}

ControlOutcome ControlService::TimeLimit(const std::string& task_name, const std::string& worker,
                                         std::optional<double> soft, std::optional<double> hard) {
  const std::string action = "time_limit";
  const nlohmann::json args = {{"task_name", task_name},
                               {"soft", soft ? nlohmann::json(*soft) : nlohmann::json(nullptr)},
                               {"hard", hard ? nlohmann::json(*hard) : nlohmann::json(nullptr)}};
  {
    Gate gate(*this);
    if (!gate.entered())
      return BusyOutcome();
    if (TaskRegistered(task_name) == false) {
      auto o = Failure(ControlStatus::kNotFound, "Unknown task " + Quoted(task_name));
      Audit(action, worker, DumpJson(args), o);
      return o;
    }
  }
  return WorkerCommand(action, worker, {"time_limit", args}, OkText, "Failed to set timeouts: ");
}

// ------------------------------------------------------------------ sending tasks

ControlOutcome ControlService::Publish(TaskSpec& spec) {
  if (spec.id.empty())
    spec.id = NewUuid4();
  spec.origin = sender_.hostname;
  if (auto r = transport_.PublishTask(spec.queue, spec.priority, EncodeTaskMessage(spec)); !r) {
    return Failure(ControlStatus::kUnavailable, "cannot reach the broker: " + r.error());
  }
  // task-sent, so the task shows up (PENDING) before a worker takes it; best effort.
  if (auto e = transport_.PublishEvent("task.sent", EncodeTaskSentEvent(spec, sender_, ++event_clock_, now_())); !e) {
    Logger("control")->warn("task {} was sent but its task-sent event was not: {}", spec.id, e.error());
  }
  nlohmann::json body = {{"task-id", spec.id}};
  if (backend_)
    body["state"] = "PENDING";
  return ControlOutcome{ControlStatus::kOk, std::move(body)};
}

ControlOutcome ControlService::SendTask(TaskSpec spec, bool check_registered, const std::string& action) {
  auto finish = [&](ControlOutcome o) {
    Audit(action, spec.name, "queue=" + spec.queue + " id=" + spec.id, o);
    return o;
  };
  if (spec.name.empty())
    return finish(Failure(ControlStatus::kBadRequest, "missing task name"));
  if (check_registered) {
    Gate gate(*this);
    if (!gate.entered())
      return finish(BusyOutcome());
    if (TaskRegistered(spec.name) == false) {
      return finish(Failure(ControlStatus::kNotFound, "Unknown task " + Quoted(spec.name)));
    }
  }
  return finish(Publish(spec));
}

ControlOutcome ControlService::ApplyTask(TaskSpec spec, double wait_seconds) {
  auto finish = [&](ControlOutcome o) {
    Audit("apply", spec.name, "queue=" + spec.queue + " id=" + spec.id, o);
    return o;
  };
  if (spec.name.empty())
    return finish(Failure(ControlStatus::kBadRequest, "missing task name"));
  if (!backend_)
    return finish(Failure(ControlStatus::kUnavailable, "no supported result backend is configured"));
  Gate gate(*this);
  if (!gate.entered())
    return finish(BusyOutcome());
  if (TaskRegistered(spec.name) == false) {
    return finish(Failure(ControlStatus::kNotFound, "Unknown task " + Quoted(spec.name)));
  }
  ControlOutcome sent = Publish(spec);
  if (sent.status != ControlStatus::kOk)
    return finish(sent);
  if (wait_seconds <= 0)
    wait_seconds = options_.default_apply_wait_seconds;
  auto meta = WaitForResult(spec.id, wait_seconds);
  if (!meta)
    return finish(Failure(ControlStatus::kUnavailable, "cannot read the result backend: " + meta.error()));
  nlohmann::json body = {{"task-id", spec.id}, {"state", meta->state}};
  if (!IsReadyState(meta->state)) {
    body["error"] = fmt::format("the task did not finish within {:g} s", wait_seconds);
    return finish(ControlOutcome{ControlStatus::kNoReply, std::move(body)});
  }
  AddResultFields(*meta, body);
  return finish(ControlOutcome{ControlStatus::kOk, std::move(body)});
}

Result<TaskResultMeta> ControlService::WaitForResult(const std::string& task_id, double wait_seconds) {
  wait_seconds = std::min<double>(wait_seconds, options_.max_result_wait_seconds);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(wait_seconds);
  for (;;) {
    auto meta = backend_->Get(task_id);
    if (!meta || IsReadyState(meta->state) || std::chrono::steady_clock::now() >= deadline) {
      return meta;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.result_poll_ms));
  }
}

ControlOutcome ControlService::TaskResult(const std::string& task_id, double wait_seconds) {
  if (!backend_)
    return Failure(ControlStatus::kUnavailable, "no supported result backend is configured");
  std::optional<Gate> gate;
  if (wait_seconds > 0) {
    gate.emplace(*this);
    if (!gate->entered())
      return BusyOutcome();
  }
  auto meta = wait_seconds > 0 ? WaitForResult(task_id, wait_seconds) : backend_->Get(task_id);
  if (!meta)
    return Failure(ControlStatus::kUnavailable, "cannot read the result backend: " + meta.error());
  nlohmann::json body = {{"task-id", task_id}, {"state", meta->state}};
  if (IsReadyState(meta->state)) {
    AddResultFields(*meta, body);
  } else if (wait_seconds > 0) {
    body["error"] = "the task did not finish within the timeout";
    return ControlOutcome{ControlStatus::kNoReply, std::move(body)};
  }
  return ControlOutcome{ControlStatus::kOk, std::move(body)};
}

ControlOutcome ControlService::AbortTask(const std::string& task_id) {
  auto finish = [&](ControlOutcome o) {
    Audit("abort", task_id, "", o);
    return o;
  };
  if (!backend_)
    return finish(Failure(ControlStatus::kUnavailable, "no supported result backend is configured"));
  if (auto r = backend_->MarkAborted(task_id); !r) {
    return finish(Failure(ControlStatus::kUnavailable, "cannot write the result backend: " + r.error()));
  }
  return finish(Message("Aborted " + Quoted(task_id)));
}

void AddResultFields(const TaskResultMeta& meta, nlohmann::json& response) {
  const bool exception_state = meta.state == "FAILURE" || meta.state == "RETRY" || meta.state == "REVOKED";
  std::string repr = exception_state ? ExceptionRepr(meta.result) : std::string();
  response["result"] = repr.empty() ? meta.result : nlohmann::json(repr);
  if (meta.state == "FAILURE") {
    response["traceback"] = meta.traceback;
  }
}

// ------------------------------------------------------------------ inspection

Result<std::vector<std::string>> ControlService::RefreshWorkers(const std::string& worker) {
  std::vector<ControlRequest> requests;
  for (const InspectMethod& m : CachedInspectMethods()) {
    ControlRequest r;
    r.method = m.name;
    r.arguments = nlohmann::json::parse(m.arguments_json);
    if (!worker.empty())
      r.destination = {worker};
    r.reply = true;
    requests.push_back(std::move(r));
  }
  auto replies = transport_.BroadcastMany(requests, Collect());
  if (!replies)
    return Error{replies.error()};
  const double now = now_();
  std::set<std::string> answered;
  for (size_t i = 0; i < requests.size(); ++i) {
    for (auto& h : cache_.Update(requests[i].method, (*replies)[i], now))
      answered.insert(std::move(h));
  }
  return std::vector<std::string>(answered.begin(), answered.end());
}

ControlOutcome ControlService::RefreshWorkersGated(const std::string& worker) {
  Gate gate(*this);
  if (!gate.entered())
    return BusyOutcome();
  auto r = RefreshWorkers(worker);
  if (!r)
    return Failure(ControlStatus::kUnavailable, "Failed to update workers: " + r.error());
  return ControlOutcome{ControlStatus::kOk, nlohmann::json(*r)};
}

ControlOutcome ControlService::Inspect(const std::string& method, const std::string& worker,
                                       const nlohmann::json& arguments) {
  static const std::set<std::string> kAllowed = {"ping",    "active",     "reserved", "scheduled",
                                                 "revoked", "registered", "stats",    "active_queues",
                                                 "conf",    "query_task", "clock",    "report"};
  if (!kAllowed.contains(method)) {
    return Failure(ControlStatus::kNotFound, "Unknown inspect method " + Quoted(method));
  }
  Gate gate(*this);
  if (!gate.entered())
    return BusyOutcome();
  ControlRequest req{method, arguments.is_object() ? arguments : nlohmann::json::object(), {}, true, 0};
  if (!worker.empty())
    req.destination = {worker};
  auto replies = transport_.Broadcast(req, Collect());
  if (!replies)
    return Failure(ControlStatus::kUnavailable, "cannot reach the broker: " + replies.error());
  for (const InspectMethod& m : CachedInspectMethods()) {
    if (method == m.name)
      cache_.Update(method, *replies, now_());
  }
  nlohmann::json body = nlohmann::json::object();
  for (const ControlReply& r : *replies)
    body[r.hostname] = r.body;
  if (!worker.empty() && !body.contains(worker)) {
    return Failure(ControlStatus::kNoReply, "no reply from " + Quoted(worker) + " within " +
                                                std::to_string(options_.inspect_timeout_ms) + " ms");
  }
  return ControlOutcome{ControlStatus::kOk, std::move(body)};
}

}  // namespace stalk
