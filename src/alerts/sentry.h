// Stalk — Celery monitoring server.
// Sentry forwarding: with SENTRY_DSN set, every task-failed event becomes one Sentry error event —
// exception type and value from Celery's repr ("ValueError('x')"), frames parsed from the Python
// traceback text, task name/id/args/kwargs/retries as the `celery_task` context, the worker as
// server_name, SENTRY_ENVIRONMENT as environment — posted in Sentry's envelope format to
// <dsn host>/api/<project>/envelope/ with an X-Sentry-Auth header.
//
// SentryForwarder is a StateListener: on the ingest thread it copies the failed task's fields into a
// bounded queue (dropped and counted when full) and returns; its own thread sends, at most
// max_per_minute events (token bucket; the excess is dropped and counted), and after a 429 waits the
// Retry-After (or X-Sentry-Rate-Limits) period, dropping what fails meanwhile, as Sentry's SDKs do.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "state/state_listener.h"

namespace stalk {

struct SentryDsn {
  std::string envelope_url;  // scheme://host[:port][/prefix]/api/<project>/envelope/
  std::string public_key;
  std::string project_id;
};
// Parses https://<key>@<host>[:port][/prefix]/<project>; errors never echo the DSN (it is a secret).
Result<SentryDsn> ParseSentryDsn(const std::string& dsn);

struct ExceptionInfo {
  std::string type;   // "ValueError", "celery.exceptions.Retry"; "UnknownException" when unparseable
  std::string value;  // the message
};
// From Celery's exception repr ("ValueError('boom')", "KeyError(1)", "Exc()"); the traceback's last
// line ("ValueError: boom") is the fallback when the repr does not parse.
ExceptionInfo ParseExceptionRepr(const std::string& repr, const std::string& traceback);

struct StackFrame {
  std::string filename, function, context_line;
  int lineno = 0;
};
// Frames of the last "Traceback (most recent call last):" block, oldest first (Sentry's order).
std::vector<StackFrame> ParsePythonTraceback(const std::string& traceback);

struct FailedTask {
  std::string id, name, worker, args, kwargs, exception, traceback, queue;
  int retries = -1;
  double timestamp = 0;
};

// The envelope body for one failed task (header line, item header, event JSON).
std::string SentryEnvelope(const FailedTask& t, const SentryDsn& dsn, const std::string& environment,
                           const std::string& event_id, double now);
std::string SentryAuthHeader(const SentryDsn& dsn);

struct SentryOptions {
  std::string environment;
  double max_per_minute = 60;
  size_t queue_capacity = 256;
  double timeout = 5;
};

class SentryForwarder : public StateListener {
 public:
  SentryForwarder(SentryDsn dsn, SentryOptions options);
  ~SentryForwarder() override;
  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  void Start();
  void Stop();
  // Queues one failed task (what OnTaskEvent does); false when the queue is full.
  bool Push(FailedTask t);
  void RenderMetrics(std::string& out, bool openmetrics) const;

  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }

 private:
  void Run();

  SentryDsn dsn_;
  SentryOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FailedTask> queue_;
  bool stop_ = false;
  std::atomic<bool> cancel_{false};  // aborts the send in flight at Stop
  std::thread thread_;
  std::atomic<uint64_t> sent_{0}, failed_{0}, dropped_{0}, rate_limited_{0};
};

}  // namespace stalk
