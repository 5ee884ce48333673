// Stalk — Celery monitoring server.
#include "http/audit_routes.h"

#include <algorithm>
#include <charconv>

#include "common/json_writer.h"

namespace stalk {
namespace {

constexpr size_t kAuditDefaultLimit = 100;
constexpr size_t kAuditMaxLimit = 10000;

HttpResponse ListAudit(const AuditApi& api, const HttpRequest& req) {
  size_t limit = kAuditDefaultLimit;
  if (auto it = req.query.find("limit"); it != req.query.end()) {
    const std::string& text = it->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return HttpResponse::Error(400, "limit must be a non-negative integer");
    }
    limit = std::min(limit, kAuditMaxLimit);
  }
  // Newest first: this process's entries from memory (the store writes them a moment later), then
  // older ones from the store (earlier runs, other instances sharing it).
  std::vector<AuditEntry> entries = api.memory->Recent(limit);
  std::string source = "memory";
  std::string store_error;
  if (api.stored && entries.size() < limit) {
    auto r = api.stored(limit);
    if (r) {
      source = entries.empty() ? "store" : "memory+store";
      const double oldest = entries.empty() ? 0 : entries.back().at;
      for (AuditEntry& e : *r) {
        if (entries.size() >= limit) {
          break;
        }
        if (oldest == 0 || e.at < oldest) {
          entries.push_back(std::move(e));
        }
      }
    } else {
      store_error = r.error();
    }
  }
  JsonWriter w;
  w.BeginObject();
  w.Field("source", source);
  if (!store_error.empty()) {
    w.Field("store_error", store_error);
  }
  w.Key("entries");
  w.BeginArray();
  for (const AuditEntry& e : entries) {
    w.BeginObject();
    w.Field("at", e.at);
    w.Field("actor", e.actor);
    w.Field("role", e.role);
    w.Field("remote", e.remote);
    w.Field("action", e.action);
    w.Field("target", e.target);
    w.Key("params");
    w.String(e.params);
    w.Field("result", e.result);
    w.Field("message", e.message);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return HttpResponse::Json(w.Take());
}

}  // namespace

void RegisterAuditApi(Router& router, const AuditApi& api) {
  router.Get("/api/admin/audit", [&api](const HttpRequest& req, const std::string&) { return ListAudit(api, req); });
}

}  // namespace stalk
