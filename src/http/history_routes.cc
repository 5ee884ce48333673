// Stalk — Celery monitoring server.
#include "http/history_routes.h"

#include <algorithm>
#include <charconv>

#include "common/json_writer.h"
#include "state/task_query.h"

namespace stalk {
namespace {

constexpr size_t kHistoryDefaultLimit = 100;
constexpr size_t kHistoryMaxLimit = 1000;  // one indexed walk per request; page with before= for more

HttpResponse SearchHistory(const HistoryApi& api, const HttpRequest& req) {
  if (!api.search) {
    return HttpResponse::Error(404, "no history store: start Stalk with --db");
  }
  TaskSearch q;
  q.limit = kHistoryDefaultLimit;
  if (auto v = req.Arg("limit"); v && !v->empty()) {
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), q.limit);
    if (ec != std::errc() || end != v->data() + v->size()) {
      return HttpResponse::Error(400, "invalid limit");
    }
    q.limit = std::min(q.limit, kHistoryMaxLimit);
  }
  q.state = req.ArgOr("state", "");
  q.name = req.ArgOr("taskname", "");
  q.worker = req.ArgOr("workername", "");
  q.text = req.ArgOr("search", "");
  for (auto [arg, dst] : {std::pair{"received_start", &q.received_from}, std::pair{"received_end", &q.received_to},
                          std::pair{"before", &q.before}}) {
    if (auto v = req.Arg(arg); v && !v->empty()) {
      *dst = ParseQueryTime(*v);
      if (!*dst) {
        return HttpResponse::Error(400, std::string("invalid ") + arg + ": use epoch seconds or YYYY-MM-DD HH:MM");
      }
    }
  }
  auto found = api.search(q);
  if (!found) {
    return HttpResponse::Error(503, "history store: " + found.error());
  }
  JsonWriter w;
  w.Reserve(found->size() * 900 + 16);
  w.BeginObject();
  const std::vector<std::string> no_children;
  for (const TaskRecord& r : *found) {
    w.Key(r.id);
    WriteTaskRecordJson(r, no_children, w);
  }
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

}  // namespace

void RegisterHistoryApi(Router& router, const HistoryApi& api) {
  router.Get("/api/stalk/history",
             [api](const HttpRequest& req, const std::string&) { return SearchHistory(api, req); });
}

}  // namespace stalk
