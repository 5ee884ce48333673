// Stalk — Celery monitoring server.
// Event: one decoded Celery event (celery-protocol.md §2.3). String fields are views into the decoder's
// buffers and live until the decoder decodes the next message; state/ copies what it keeps.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace stalk {

enum class EventKind : uint8_t {
  kTaskSent,
  kTaskReceived,
  kTaskStarted,
  kTaskSucceeded,
  kTaskFailed,
  kTaskRetried,
  kTaskRevoked,
  kTaskRejected,
  kTaskCustom,  // any other task-xyz: Celery turns it into the custom state "XYZ"
  kWorkerOnline,
  kWorkerHeartbeat,
  kWorkerOffline,
  kWorkerCustom,  // worker-xyz that is none of the above
  kOther,         // any other group (custom application events)
};

EventKind ClassifyEventType(std::string_view type);
bool IsTaskEvent(EventKind k);
bool IsWorkerEvent(EventKind k);

// A string-valued field: absent, JSON null, or a value.
struct OptStr {
  std::string_view value;
  bool present = false;
  bool null = false;
  bool has_value() const { return present && !null; }
};

struct Event {
  EventKind kind = EventKind::kOther;
  std::string_view type;
  std::string_view hostname;
  std::string_view uuid;
  double timestamp = 0;
  bool has_timestamp = false;
  int64_t clock = 0;
  bool has_clock = false;
  double utcoffset = 0;
  int64_t pid = 0;

  // task-* fields
  OptStr name, args, kwargs, result, exception, traceback, root_id, parent_id, eta, expires, exchange, routing_key,
      queue, signum;
  std::optional<int64_t> retries;
  std::optional<double> runtime;
  std::optional<bool> requeue, terminated, expired;

  // worker-* fields
  std::optional<double> freq;
  std::optional<int64_t> active, processed;
  std::optional<std::array<double, 3>> loadavg;
  OptStr sw_ident, sw_ver, sw_sys;

  // Custom events (task-xyz Celery does not define, worker-xyz likewise, any other type): the whole
  // event object as minified JSON, so its own fields (progress, order id, tenant...) are not lost.
  // Empty for Celery's own event types (the hot path does not pay for it).
  std::string_view custom_json;
};

}  // namespace stalk
