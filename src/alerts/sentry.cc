// Stalk — Celery monitoring server.
#include "alerts/sentry.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <random>

#include "alerts/channel_payloads.h"
#include "alerts/curl_client.h"
#include "common/clock.h"
#include "common/log.h"
#include "protocol/event.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

bool IdentChar(char c, bool first) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         (!first && (std::isdigit(static_cast<unsigned char>(c)) || c == '.'));
}

// The identifier (dotted) at the start of `s`; empty when none.
std::string LeadingIdent(const std::string& s) {
  size_t i = 0;
  while (i < s.size() && IdentChar(s[i], i == 0))
    ++i;
  return s.substr(0, i);
}

// 'text' or "text" as a Python literal -> text; anything else unchanged.
std::string Unquote(const std::string& s) {
  if (s.size() < 2 || (s[0] != '\'' && s[0] != '"') || s.back() != s[0])
    return s;
  std::string out;
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size()) {
      const char e = s[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
    } else if (s[i] == s[0]) {
      return s;  // several literals ("'a', 'b'"): keep the text as is
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string Trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos)
    return {};
  return s.substr(a, s.find_last_not_of(" \t\r") + 1 - a);
}

std::string EventId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

}  // namespace

Result<SentryDsn> ParseSentryDsn(const std::string& dsn) {
  const Error bad{"SENTRY_DSN is not a DSN (expected https://<key>@<host>/<project>)"};
  const size_t scheme_end = dsn.find("://");
  if (scheme_end == std::string::npos)
    return bad;
  const std::string scheme = dsn.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https")
    return bad;
  const size_t at = dsn.find('@', scheme_end + 3);
  if (at == std::string::npos)
    return bad;
  std::string key = dsn.substr(scheme_end + 3, at - scheme_end - 3);
  if (const size_t colon = key.find(':'); colon != std::string::npos)
    key.resize(colon);  // legacy key:secret
  const size_t path = dsn.find('/', at + 1);
  if (key.empty() || path == std::string::npos)
    return bad;
  const std::string host = dsn.substr(at + 1, path - at - 1);
  std::string rest = dsn.substr(path);  // "/prefix/123"
  while (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  const size_t last = rest.rfind('/');
  const std::string project = rest.substr(last + 1);
  const std::string prefix = rest.substr(0, last);
  if (host.empty() || project.empty())
    return bad;
  return SentryDsn{scheme + "://" + host + prefix + "/api/" + project + "/envelope/", key, project};
}

ExceptionInfo ParseExceptionRepr(const std::string& repr, const std::string& traceback) {
  const std::string r = Trim(repr);
  const std::string type = LeadingIdent(r);
  if (!type.empty() && r.size() > type.size() + 1 && r[type.size()] == '(' && r.back() == ')') {
    return {type, Unquote(Trim(r.substr(type.size() + 1, r.size() - type.size() - 2)))};
  }
  // Fallback: the traceback's last line, "module.Type: message".
  size_t end = traceback.find_last_not_of("\r\n ");
  if (end != std::string::npos) {
    const size_t start = traceback.rfind('\n', end);
    const std::string line = traceback.substr(start == std::string::npos ? 0 : start + 1,
                                              end + 1 - (start == std::string::npos ? 0 : start + 1));
    const std::string t = LeadingIdent(line);
    if (!t.empty() && (line.size() == t.size() || line[t.size()] == ':')) {
      return {t, line.size() > t.size() + 1 ? Trim(line.substr(t.size() + 1)) : ""};
    }
  }
  return {"UnknownException", r};
}

std::vector<StackFrame> ParsePythonTraceback(const std::string& traceback) {
  std::vector<StackFrame> frames;
  size_t pos = 0;
  bool expect_context = false;
  while (pos < traceback.size()) {
    size_t nl = traceback.find('\n', pos);
    if (nl == std::string::npos)
      nl = traceback.size();
    const std::string raw = traceback.substr(pos, nl - pos);
    pos = nl + 1;
    const std::string line = Trim(raw);
    if (line.starts_with("Traceback (most recent call last)")) {
      frames.clear();
      expect_context = false;
      continue;
    }
    if (line.starts_with("File \"")) {
      StackFrame f;
      const size_t q = line.find('"', 6);
      if (q == std::string::npos)
        continue;
      f.filename = line.substr(6, q - 6);
      const size_t ln = line.find(", line ", q);
      if (ln != std::string::npos)
        f.lineno = std::atoi(line.c_str() + ln + 7);
      const size_t in = line.find(", in ", q);
      if (in != std::string::npos)
        f.function = line.substr(in + 5);
      frames.push_back(std::move(f));
      expect_context = true;
      continue;
    }
    if (expect_context && !raw.empty() && (raw[0] == ' ' || raw[0] == '\t') && !frames.empty()) {
      // Python 3.11+ adds caret lines ("    ^^^^") after the source line: skip them.
      if (line.find_first_not_of("^~ ") != std::string::npos)
        frames.back().context_line = line;
      expect_context = false;
      continue;
    }
    expect_context = false;
  }
  return frames;
}

std::string SentryAuthHeader(const SentryDsn& dsn) {
  return "Sentry sentry_version=7, sentry_client=stalk/" STALK_VERSION ", sentry_key=" + dsn.public_key;
}

std::string SentryEnvelope(const FailedTask& t, const SentryDsn& /*dsn*/, const std::string& environment,
                           const std::string& event_id, double now) {
  const ExceptionInfo ex = ParseExceptionRepr(t.exception, t.traceback);
  nlohmann::json frames = nlohmann::json::array();
  for (const auto& f : ParsePythonTraceback(t.traceback)) {
    const bool library = f.filename.find("-packages/") != std::string::npos || f.filename.starts_with("<");
    nlohmann::json j = {{"filename", f.filename},
                        {"abs_path", f.filename},
                        {"function", f.function},
                        {"lineno", f.lineno},
                        {"in_app", !library}};
    if (!f.context_line.empty())
      j["context_line"] = f.context_line;
    frames.push_back(std::move(j));
  }
  nlohmann::json exc = {
      {"type", ex.type}, {"value", ex.value}, {"mechanism", {{"type", "celery"}, {"handled", false}}}};
  if (const size_t dot = ex.type.rfind('.'); dot != std::string::npos) {
    exc["module"] = ex.type.substr(0, dot);
    exc["type"] = ex.type.substr(dot + 1);
  }
  if (!frames.empty())
    exc["stacktrace"] = {{"frames", frames}};
  nlohmann::json task = {{"id", t.id}, {"name", t.name}, {"args", t.args}, {"kwargs", t.kwargs}};
  if (t.retries >= 0)
    task["retries"] = t.retries;
  if (!t.queue.empty())
    task["queue"] = t.queue;
  nlohmann::json event = {{"event_id", event_id},
                          {"timestamp", Rfc3339(t.timestamp > 0 ? t.timestamp : now)},
                          {"platform", "python"},
                          {"level", "error"},
                          {"logger", "celery.task"},
                          {"transaction", t.name},
                          {"server_name", t.worker},
                          {"exception", {{"values", nlohmann::json::array({exc})}}},
                          {"contexts", {{"celery_task", task}}},
                          {"tags", {{"celery_task_name", t.name}, {"celery_worker", t.worker}}},
                          {"sdk", {{"name", "stalk"}, {"version", STALK_VERSION}}}};
  if (!environment.empty())
    event["environment"] = environment;
  const std::string body = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out = nlohmann::json{{"event_id", event_id}, {"sent_at", Rfc3339(now)}}.dump();
  out += "\n";
  out += nlohmann::json{{"type", "event"}, {"length", body.size()}, {"content_type", "application/json"}}.dump();
  out += "\n" + body + "\n";
  return out;
}

SentryForwarder::SentryForwarder(SentryDsn dsn, SentryOptions options)
    : dsn_(std::move(dsn)), options_(std::move(options)) {
  CurlGlobalInit();
}

SentryForwarder::~SentryForwarder() { Stop(); }

void SentryForwarder::OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) {
  if (ev.kind != EventKind::kTaskFailed || previous == TaskState::kFailure)
    return;
  FailedTask f;
  f.id = task.IdString();
  if (task.name != kNoId)
    f.name = state.Name(task.name);
  if (task.worker != kNoId)
    f.worker = state.Name(task.worker);
  if (task.queue != kNoId)
    f.queue = state.Name(task.queue);
  f.args = task.args.view();
  f.kwargs = task.kwargs.view();
  f.exception = task.exception.view();
  f.traceback = task.traceback.view();
  f.retries = task.retries;
  f.timestamp = task.failed > 0 ? task.failed : task.timestamp;
  Push(std::move(f));
}

bool SentryForwarder::Push(FailedTask t) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_capacity) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(t));
  }
  cv_.notify_one();
  return true;
}

void SentryForwarder::Start() {
  thread_ = std::thread([this] { Run(); });
}

void SentryForwarder::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cancel_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

void SentryForwarder::Run() {
  auto log = Logger("sentry");
  double tokens = options_.max_per_minute;
  double refilled_at = UnixSeconds();
  double blocked_until = 0;
  const std::map<std::string, std::string> headers = {{"Content-Type", "application/x-sentry-envelope"},
                                                      {"X-Sentry-Auth", SentryAuthHeader(dsn_)}};
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_)
      return;  // pending events are dropped at shutdown: never hold it up on Sentry
    FailedTask t = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const double now = UnixSeconds();
    tokens = std::min(options_.max_per_minute, tokens + (now - refilled_at) * options_.max_per_minute / 60);
    refilled_at = now;
    if (now < blocked_until || tokens < 1) {
      rate_limited_.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
      continue;
    }
    tokens -= 1;
    const auto r = HttpPost(dsn_.envelope_url, headers, SentryEnvelope(t, dsn_, options_.environment, EventId(), now),
                            options_.timeout, &cancel_);
    if (r.ok()) {
      sent_.fetch_add(1, std::memory_order_relaxed);
    } else {
      failed_.fetch_add(1, std::memory_order_relaxed);
      if (r.status == 429) {
        const double wait = r.retry_after > 0 ? r.retry_after : 60;
        blocked_until = UnixSeconds() + wait;
        log->warn("Sentry rate-limited Stalk (429); pausing forwarding for {:.0f}s", wait);
      } else {
        log->warn("Sentry event for task {} not accepted ({})", t.id,
                  r.status ? "HTTP " + std::to_string(r.status) : r.error);
      }
    }
    lock.lock();
  }
}

void SentryForwarder::RenderMetrics(std::string& out, bool openmetrics) const {
  const std::string total = openmetrics ? "" : "_total";
  out += "# HELP stalk_sentry_events" + total + " Failed tasks forwarded to Sentry, by result.\n";
  out += "# TYPE stalk_sentry_events" + total + " counter\n";
  out += "stalk_sentry_events_total{result=\"sent\"} " + std::to_string(sent_.load()) + "\n";
  out += "stalk_sentry_events_total{result=\"failed\"} " + std::to_string(failed_.load()) + "\n";
  out += "stalk_sentry_events_total{result=\"rate_limited\"} " + std::to_string(rate_limited_.load()) + "\n";
  out += "stalk_sentry_events_total{result=\"dropped\"} " + std::to_string(dropped_.load()) + "\n";
}

}  // namespace stalk
