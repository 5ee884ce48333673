// Stalk — Celery monitoring server.
#include "control/redis_result_backend.h"

#include <chrono>

#include "common/clock.h"
#include "control/kombu_message.h"

namespace stalk {

bool IsReadyState(const std::string& state) { return state == "SUCCESS" || state == "FAILURE" || state == "REVOKED"; }

Result<TaskResultMeta> ParseResultMeta(std::string_view text) {
  nlohmann::json meta = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) {
    return Error{"the stored result is not a JSON object (only the json result_serializer is supported)"};
  }
  TaskResultMeta out;
  out.found = true;
  if (auto s = meta.find("status"); s != meta.end() && s->is_string()) {
    out.state = s->get<std::string>();
  }
  out.result = meta.value("result", nlohmann::json());
  out.traceback = meta.value("traceback", nlohmann::json());
  return out;
}

RedisResultBackend::RedisResultBackend(BrokerUrl url, RedisResultBackendOptions options)
    : url_(std::move(url)), options_(options) {}

Result<ReplyPtr> RedisResultBackend::Run(const std::vector<std::string_view>& args) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!conn_.connected()) {
      if (auto c = conn_.Connect(url_, options_.timeout_ms, /*select_db=*/true); !c) {
        return Error{c.error()};
      }
    } else if (attempt == 0) {
      // Idle since the last call: make sure it still works before a write goes out on it.
      if (!conn_.Command({"PING"}, options_.timeout_ms)) {
        continue;
      }
    }
    auto r = conn_.Command(args, options_.timeout_ms);
    if (!r) {
      conn_.Close();
      return Error{r.error()};
    }
    if ((*r)->type == REDIS_REPLY_ERROR) {
      return Error{"result backend refused " + std::string(args[0]) + ": " + std::string((*r)->str, (*r)->len)};
    }
    return r;
  }
  return Error{"cannot reach the result backend"};
}

Result<ReplyPtr> RedisResultBackend::RunCounted(const std::vector<std::string_view>& args) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  auto r = Run(args);
  if (r) {
    up_.store(true, std::memory_order_relaxed);
    return r;
  }
  errors_.fetch_add(1, std::memory_order_relaxed);
  up_.store(false, std::memory_order_relaxed);
  std::lock_guard lock(health_mu_);
  last_error_ = r.error();
  last_error_at_ = UnixSeconds();
  return r;
}

Result<bool> RedisResultBackend::Ping() {
  std::lock_guard lock(mu_);
  auto r = RunCounted({"PING"});
  if (!r) {
    return Error{r.error()};
  }
  return true;
}

RedisResultBackend::Health RedisResultBackend::health() const {
  Health h;
  h.up = up_.load(std::memory_order_relaxed);
  h.requests = requests_.load(std::memory_order_relaxed);
  h.errors = errors_.load(std::memory_order_relaxed);
  std::lock_guard lock(health_mu_);
  h.last_error = last_error_;
  h.last_error_at = last_error_at_;
  return h;
}

std::optional<std::string> RedisResultBackend::Problem() const {
  if (up_.load(std::memory_order_relaxed)) {
    return std::nullopt;
  }
  std::lock_guard lock(health_mu_);
  return url_.Redacted() + ": " + last_error_;
}

void RedisResultBackend::RenderMetrics(bool openmetrics, std::string& out) const {
  const Health h = health();
  const std::string total = openmetrics ? "" : "_total";
  out += "# HELP stalk_result_backend_up Whether the result backend's last request or probe succeeded.\n";
  out += "# TYPE stalk_result_backend_up gauge\nstalk_result_backend_up " + std::string(h.up ? "1" : "0") + "\n";
  out += "# HELP stalk_result_backend_requests" + total + " Requests to the result backend (probes included).\n";
  out += "# TYPE stalk_result_backend_requests" + total + " counter\n";
  out += "stalk_result_backend_requests_total " + std::to_string(h.requests) + "\n";
  out += "# HELP stalk_result_backend_errors" + total + " Failed requests to the result backend.\n";
  out += "# TYPE stalk_result_backend_errors" + total + " counter\n";
  out += "stalk_result_backend_errors_total " + std::to_string(h.errors) + "\n";
}

Result<TaskResultMeta> RedisResultBackend::Get(const std::string& task_id) {
  std::lock_guard lock(mu_);
  auto r = RunCounted({"GET", KeyFor(task_id)});
  if (!r) {
    return Error{r.error()};
  }
  if ((*r)->type != REDIS_REPLY_STRING) {
    return TaskResultMeta{};
  }
  return ParseResultMeta(std::string_view((*r)->str, (*r)->len));
}

Result<bool> RedisResultBackend::MarkAborted(const std::string& task_id) {
  std::lock_guard lock(mu_);
  const std::string key = KeyFor(task_id);
  auto current = RunCounted({"GET", key});
  if (!current) {
    return Error{current.error()};
  }
  if ((*current)->type == REDIS_REPLY_STRING) {
    auto meta = ParseResultMeta(std::string_view((*current)->str, (*current)->len));
    if (meta && meta->state == "SUCCESS") {
      return false;  // Celery never overwrites a success
    }
  }
  const nlohmann::json meta = {
      {"status", "ABORTED"},  {"result", nullptr},  {"traceback", nullptr}, {"children", nlohmann::json::array()},
      {"date_done", nullptr}, {"task_id", task_id},
  };
  const std::string value = DumpJson(meta);
  const std::string expires = std::to_string(options_.result_expires_seconds);
  auto set = options_.result_expires_seconds > 0 ? RunCounted({"SETEX", key, expires, value})
                                                 : RunCounted({"SET", key, value});
  if (!set) {
    return Error{set.error()};
  }
  if (auto pub = RunCounted({"PUBLISH", key, value}); !pub) {
    return Error{pub.error()};
  }
  return true;
}

}  // namespace stalk
