// Stalk — Celery monitoring server.
#include "http/control_routes.h"

#include <charconv>
#include <chrono>
#include <cmath>

#include "common/clock.h"
#include "control/kombu_message.h"
#include "control/task_submission.h"

namespace stalk {
namespace {

int HttpStatus(ControlStatus s) {
  switch (s) {
    case ControlStatus::kOk:
      return 200;
    case ControlStatus::kBadRequest:
      return 400;
    case ControlStatus::kNotFound:
      return 404;
    case ControlStatus::kFailed:
      return 403;
    case ControlStatus::kNoReply:
      return 504;
    case ControlStatus::kUnavailable:
      return 503;
    case ControlStatus::kBusy:
      return 503;
  }
  return 500;
}

HttpResponse Reply(const ControlOutcome& o) {
  HttpResponse resp = HttpResponse::Json(DumpJson(o.body), HttpStatus(o.status));
  if (o.status == ControlStatus::kBusy) {
    resp.headers["Retry-After"] = "1";  // the waiting calls end within about the inspect timeout
  }
  return resp;
}

HttpResponse BadRequest(const std::string& text) { return HttpResponse::Error(400, text); }

// Flower's get_argument: the query string and the request body (form or JSON object), body last wins.
class Params {
 public:
  static Result<Params> From(const HttpRequest& req) {
    Params p;
    p.values_ = req.query;
    const std::string type = req.Header("content-type");
    if (req.body.empty()) {
      return p;
    }
    if (type.starts_with("application/json")) {
      nlohmann::json body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
      if (body.is_discarded() || !body.is_object()) {
        return Error{"malformed JSON body: expected an object"};
      }
      for (auto& [k, v] : body.items()) {
        p.values_[k] = v.is_string() ? v.get<std::string>() : DumpJson(v);
      }
    } else if (type.empty() || type.starts_with("application/x-www-form-urlencoded")) {
      for (auto& [k, v] : ParseQuery(req.body)) {
        p.values_[k] = v;
      }
    }
    return p;
  }

  std::optional<std::string> Get(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end())
      return std::nullopt;
    return it->second;
  }

  // Integer argument; `fallback` when absent; an error text when not an integer in [lo, hi].
  Result<int> Int(const std::string& name, std::optional<int> fallback, int lo, int hi) const {
    auto v = Get(name);
    if (!v || v->empty()) {
      if (fallback)
        return *fallback;
      return Error{"Missing argument " + name};
    }
    int n = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), n);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size() || n < lo || n > hi) {
      return Error{"Invalid argument " + name + ": expected an integer from " + std::to_string(lo) + " to " +
                   std::to_string(hi)};
    }
    return n;
  }

  Result<std::optional<double>> Seconds(const std::string& name) const {
    auto v = Get(name);
    if (!v || v->empty() || *v == "null")
      return std::optional<double>();
    double d = 0;
    auto r = std::from_chars(v->data(), v->data() + v->size(), d);
    if (r.ec != std::errc() || r.ptr != v->data() + v->size() || !std::isfinite(d) || d < 0) {
      return Error{"Invalid argument " + name + ": expected a number of seconds"};
    }
    return std::optional<double>(d);
  }

  Result<std::string> Required(const std::string& name) const {
    auto v = Get(name);
    if (!v || v->empty())
      return Error{"Missing argument " + name};
    return *v;
  }

  bool Bool(const std::string& name) const {
    auto v = Get(name);
    if (!v)
      return false;
    std::string s = *v;
    for (char& c : s)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s == "1" || s == "true" || s == "yes" || s == "on" || s == "y" || s == "t";
  }

 private:
  std::map<std::string, std::string> values_;
};

using ParamHandler = std::function<HttpResponse(const Params&, const std::string& param)>;

// Parses the parameters once; a malformed body is a 400 before any handler runs.
Router::Handler WithParams(ParamHandler h) {
  return [h = std::move(h)](const HttpRequest& req, const std::string& param) {
    auto p = Params::From(req);
    if (!p)
      return BadRequest(p.error());
    return h(*p, param);
  };
}

void RegisterWorkerRoutes(Router& r, ControlService& s) {
  r.PostPrefix("/api/worker/shutdown/",
               WithParams([&s](const Params&, const std::string& w) { return Reply(s.Shutdown(w)); }));
  r.PostPrefix("/api/worker/pool/restart/",
               WithParams([&s](const Params&, const std::string& w) { return Reply(s.PoolRestart(w)); }));
  r.PostPrefix("/api/worker/pool/grow/", WithParams([&s](const Params& p, const std::string& w) {
                 auto n = p.Int("n", 1, 1, 10000);
                 return n ? Reply(s.PoolGrow(w, *n)) : BadRequest(n.error());
               }));
  r.PostPrefix("/api/worker/pool/shrink/", WithParams([&s](const Params& p, const std::string& w) {
                 auto n = p.Int("n", 1, 1, 10000);
                 return n ? Reply(s.PoolShrink(w, *n)) : BadRequest(n.error());
               }));
  r.PostPrefix("/api/worker/pool/autoscale/", WithParams([&s](const Params& p, const std::string& w) {
                 auto min = p.Int("min", std::nullopt, 0, 10000);
                 auto max = p.Int("max", std::nullopt, 0, 10000);
                 if (!min)
                   return BadRequest(min.error());
                 if (!max)
                   return BadRequest(max.error());
                 if (*min > *max)
                   return BadRequest("Invalid arguments: min must not exceed max");
                 return Reply(s.Autoscale(w, *min, *max));
               }));
  r.PostPrefix("/api/worker/queue/add-consumer/", WithParams([&s](const Params& p, const std::string& w) {
                 auto q = p.Required("queue");
                 return q ? Reply(s.AddConsumer(w, *q)) : BadRequest(q.error());
               }));
  r.PostPrefix("/api/worker/queue/cancel-consumer/", WithParams([&s](const Params& p, const std::string& w) {
                 auto q = p.Required("queue");
                 return q ? Reply(s.CancelConsumer(w, *q)) : BadRequest(q.error());
               }));
}

void RegisterTaskControlRoutes(Router& r, ControlService& s) {
  r.PostPrefix("/api/task/revoke/", WithParams([&s](const Params& p, const std::string& id) {
                 std::string signal = p.Get("signal").value_or("SIGTERM");
                 for (char& c : signal)
                   c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
                 return Reply(s.Revoke(id, p.Bool("terminate"), signal));
               }));
  r.PostPrefix("/api/task/rate-limit/", WithParams([&s](const Params& p, const std::string& name) {
                 auto worker = p.Required("workername");
                 if (!worker)
                   return BadRequest(worker.error());
                 auto rate = p.Get("ratelimit");
                 if (!rate)
                   return BadRequest("Missing argument ratelimit");
                 return Reply(s.RateLimit(name, *worker, *rate));
               }));
  r.PostPrefix("/api/task/timeout/", WithParams([&s](const Params& p, const std::string& name) {
                 auto worker = p.Required("workername");
                 if (!worker)
                   return BadRequest(worker.error());
                 auto soft = p.Seconds("soft");
                 auto hard = p.Seconds("hard");
                 if (!soft)
                   return BadRequest(soft.error());
                 if (!hard)
                   return BadRequest(hard.error());
                 return Reply(s.TimeLimit(name, *worker, *soft, *hard));
               }));
}

std::optional<double> WaitSeconds(const HttpRequest& req, std::string& error) {
  auto v = req.Arg("timeout");
  if (!v || v->empty())
    return 0.0;
  double d = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), d);
  if (r.ec != std::errc() || r.ptr != v->data() + v->size() || !std::isfinite(d) || d < 0) {
    error = "Invalid argument timeout: expected a number of seconds";
    return std::nullopt;
  }
  return d;
}

void RegisterTaskSendRoutes(Router& r, ControlService& s, std::function<double()> now) {
  auto send = [&s, now](bool check_registered, const char* action) {
    return [&s, now, check_registered, action](const HttpRequest& req, const std::string& name) {
      auto spec = ParseTaskSubmission(req.body, name, now());
      if (!spec)
        return BadRequest(spec.error());
      return Reply(s.SendTask(std::move(*spec), check_registered, action));
    };
  };
  r.PostPrefix("/api/task/async-apply/", send(true, "async_apply"));
  r.PostPrefix("/api/task/send-task/", send(false, "send_task"));
  r.PostPrefix("/api/task/apply/", [&s, now](const HttpRequest& req, const std::string& name) {
    std::string error;
    auto wait = WaitSeconds(req, error);
    if (!wait)
      return BadRequest(error);
    auto spec = ParseTaskSubmission(req.body, name, now());
    if (!spec)
      return BadRequest(spec.error());
    return Reply(s.ApplyTask(std::move(*spec), *wait));
  });
  r.GetPrefix("/api/task/result/", [&s](const HttpRequest& req, const std::string& id) {
    std::string error;
    auto wait = WaitSeconds(req, error);
    if (!wait)
      return BadRequest(error);
    return Reply(s.TaskResult(id, *wait));
  });
  r.PostPrefix("/api/task/abort/", [&s](const HttpRequest&, const std::string& id) { return Reply(s.AbortTask(id)); });
}

void RegisterInspectRoute(Router& r, ControlService& s) {
  r.GetPrefix("/api/stalk/inspect/", [&s](const HttpRequest& req, const std::string& method) {
    nlohmann::json args = nlohmann::json::object();
    for (const InspectMethod& m : CachedInspectMethods()) {
      if (method == m.name)
        args = nlohmann::json::parse(m.arguments_json);
    }
    if (method == "query_task") {
      nlohmann::json ids = nlohmann::json::array();
      const std::string list = req.ArgOr("ids", req.ArgOr("id", ""));
      size_t start = 0;
      while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        if (comma > start)
          ids.push_back(list.substr(start, comma - start));
        start = comma + 1;
      }
      args = {{"ids", ids}};
    }
    return Reply(s.Inspect(method, req.ArgOr("workername", ""), args));
  });
}

}  // namespace

void RegisterControlApi(Router& router, ControlContext& ctx) {
  ControlService& s = *ctx.service;
  RegisterWorkerRoutes(router, s);
  RegisterTaskControlRoutes(router, s);
  auto now = ctx.now ? ctx.now : [] { return UnixSeconds(); };
  RegisterTaskSendRoutes(router, s, now);
  RegisterInspectRoute(router, s);
}

}  // namespace stalk
