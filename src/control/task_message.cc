// Stalk — Celery monitoring server.
#include "control/task_message.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "control/python_repr.h"

namespace stalk {
namespace {

nlohmann::json NullOr(const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); }
nlohmann::json NullOr(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

}  // namespace

KombuMessage EncodeTaskMessage(const TaskSpec& spec) {
  KombuMessage m;
  m.headers = {
      {"lang", "py"},
      {"task", spec.name},
      {"id", spec.id},
      {"shadow", nullptr},
      {"eta", NullOr(spec.eta)},
      {"expires", NullOr(spec.expires)},
      {"group", nullptr},
      {"group_index", nullptr},
      {"retries", 0},
      // Celery writes [time_limit, soft_time_limit] (hard first), whatever its docs say (§5.1).
      {"timelimit", nlohmann::json::array({NullOr(spec.time_limit), NullOr(spec.soft_time_limit)})},
      {"root_id", spec.id},
      {"parent_id", nullptr},
      {"argsrepr", PythonRepr(spec.args)},
      {"kwargsrepr", PythonRepr(spec.kwargs)},
      {"origin", spec.origin},
      {"ignore_result", spec.ignore_result},
  };
  m.properties = {
      {"correlation_id", spec.id},
      {"delivery_mode", 2},
      {"priority", spec.priority},
  };
  if (!spec.reply_to.empty()) {
    m.properties["reply_to"] = spec.reply_to;
  }
  if (!spec.expires.empty() && spec.expires_in_seconds) {
    const double ms = *spec.expires_in_seconds * 1000;
    m.properties["expiration"] = std::to_string(static_cast<int64_t>(ms > 0 ? ms : 0));
  }
  const nlohmann::json embed = {{"callbacks", nullptr}, {"errbacks", nullptr}, {"chain", nullptr}, {"chord", nullptr}};
  m.body = DumpJson(nlohmann::json::array({spec.args, spec.kwargs, embed}));
  return m;
}

KombuMessage EncodeTaskSentEvent(const TaskSpec& spec, const EventSender& sender, int64_t clock, double timestamp) {
  const nlohmann::json event = {
      {"hostname", sender.hostname},
      {"utcoffset", sender.utcoffset},
      {"pid", sender.pid},
      {"clock", clock},
      {"uuid", spec.id},
      {"root_id", spec.id},
      {"parent_id", nullptr},
      {"name", spec.name},
      {"args", PythonRepr(spec.args)},
      {"kwargs", PythonRepr(spec.kwargs)},
      {"retries", 0},
      {"eta", NullOr(spec.eta)},
      {"expires", NullOr(spec.expires)},
      {"queue", spec.queue},
      {"exchange", ""},
      {"routing_key", spec.queue},
      {"timestamp", timestamp},
      {"type", "task-sent"},
  };
  KombuMessage m;
  m.body = DumpJson(event);
  m.headers = {{"hostname", sender.hostname}};
  m.properties = {{"delivery_mode", 1}, {"priority", 0}};
  return m;
}

EventSender LocalEventSender() {
  EventSender s;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof host, "localhost");
  }
  s.hostname = std::string("stalk@") + host;
  s.pid = static_cast<int64_t>(getpid());
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  // Celery's utcoffset() is time.timezone // 3600: hours *west* of UTC, floor-divided.
  const long west = -local.tm_gmtoff;
  s.utcoffset = static_cast<int>(west >= 0 ? west / 3600 : -((-west + 3599) / 3600));
  return s;
}

}  // namespace stalk
