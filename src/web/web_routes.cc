// Stalk — Celery monitoring server.
#include "web/web_routes.h"

#include <map>
#include <memory>

#include "common/audit_log.h"
#include "common/json_writer.h"
#include "web/assets.h"

namespace stalk {

const char* const kDashboardCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

namespace {

void AddSecurityHeaders(HttpResponse& r) {
  r.headers["Content-Security-Policy"] = kDashboardCsp;
  r.headers["X-Frame-Options"] = "DENY";
  r.headers["Referrer-Policy"] = "no-referrer";
}

std::string NormalizedBase(std::string prefix) {
  while (!prefix.empty() && prefix.front() == '/') {
    prefix.erase(0, 1);
  }
  while (!prefix.empty() && prefix.back() == '/') {
    prefix.pop_back();
  }
  return prefix.empty() ? "/" : "/" + prefix + "/";
}

std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A page shell with its placeholders filled: {{base}}, {{v}} (asset version), {{columns}}.
// The value of `key` in a page's first line, `<!-- layout: title=Tasks; page=tasks; scripts=a,b; columns -->`
// ("" when absent; "1" for a bare flag).
std::string LayoutField(std::string_view meta, std::string_view key) {
  size_t pos = meta.find(": ");
  while (pos != std::string_view::npos) {
    pos += 2;
    const size_t end = std::min(meta.find(';', pos), meta.find(" -->", pos));
    const std::string_view item = meta.substr(pos, end - pos);
    const size_t eq = item.find('=');
    if (item.substr(0, eq) == key) {
      return eq == std::string_view::npos ? "1" : std::string(item.substr(eq + 1));
    }
    pos = end == std::string_view::npos || meta[end] != ';' ? std::string_view::npos : end;
  }
  return {};
}

// A page file holds its first line (title, page name, scripts) and its <main>; pages/_layout.html
// holds what every page shares (head, navigation, error bar), so a new page or nav link is one edit.
std::string RenderPage(std::string_view asset_name, const WebOptions& options) {
  const WebAsset* asset = FindWebAsset(asset_name);
  const WebAsset* layout = FindWebAsset("pages/_layout.html");
  if (!asset || !layout) {
    return "missing page " + std::string(asset_name);
  }
  const std::string_view page(asset->body);
  const size_t meta_end = page.find('\n');
  const std::string_view meta = page.substr(0, meta_end);
  std::string scripts;
  std::string names = LayoutField(meta, "scripts");
  for (size_t start = 0; start < names.size();) {
    const size_t comma = std::min(names.find(',', start), names.size());
    scripts += "<script src=\"static/" + names.substr(start, comma - start) + ".js?v={{v}}\" defer></script>\n";
    start = comma + 1;
  }
  std::string_view frame(layout->body);
  frame.remove_prefix(frame.find('\n') + 1);  // its own comment line
  std::string html(frame);
  html = ReplaceAll(std::move(html), "{{main}}", std::string(page.substr(meta_end + 1)));
  html = ReplaceAll(std::move(html), "{{scripts}}", scripts);
  html = ReplaceAll(std::move(html), "{{title}}", LayoutField(meta, "title"));
  html = ReplaceAll(std::move(html), "{{page}}", LayoutField(meta, "page"));
  html = ReplaceAll(std::move(html), "{{body_attrs}}",
                    LayoutField(meta, "columns").empty() ? "" : " data-columns=\"{{columns}}\"");
  html = ReplaceAll(std::move(html), "{{base}}", HtmlEscape(NormalizedBase(options.url_prefix)));
  html = ReplaceAll(std::move(html), "{{v}}", HtmlEscape(WebAssetsVersion()));
  html = ReplaceAll(std::move(html), "{{columns}}", HtmlEscape(options.tasks_columns));
  return html;
}

Router::Handler PageHandler(std::string_view asset_name, const WebOptions& options) {
  auto html = std::make_shared<const std::string>(RenderPage(asset_name, options));
  return [html](const HttpRequest&, const std::string&) {
    HttpResponse r;
    r.content_type = "text/html; charset=utf-8";
    r.body = *html;
    AddSecurityHeaders(r);
    return r;
  };
}

HttpResponse StaticFile(const HttpRequest& req, const std::string& name) {
  const WebAsset* asset = FindWebAsset("static/" + name);
  if (!asset) {
    return HttpResponse::Error(404, "not found");
  }
  HttpResponse r;
  AddSecurityHeaders(r);
  r.headers["ETag"] = std::string(asset->etag);
  // Pages ask for `?v=<version>`: that URL names these exact bytes, so it may be cached for good.
  // Any other URL is revalidated with the ETag each time.
  r.headers["Cache-Control"] =
      req.ArgOr("v", "") == WebAssetsVersion() ? "public, max-age=31536000, immutable" : "no-cache";
  r.content_type = std::string(asset->content_type);
  const std::string inm = req.Header("if-none-match");
  if (!inm.empty() && (inm == asset->etag || inm == "*" || inm.find(asset->etag) != std::string::npos)) {
    r.status = 304;
    return r;
  }
  r.body = std::string(asset->body);
  return r;
}

// {"user": "alice"|null, "role": "viewer"|"operator"|"admin", "auth_enabled": bool}. The principal
// is the one the auth guard admitted for this very request (thread-local, set before the handler).
HttpResponse WhoAmI(bool auth_enabled) {
  const AuditActor& actor = CurrentAuditActor();
  JsonWriter w;
  w.BeginObject();
  w.Key("user");
  if (auth_enabled && actor.name != "-") {
    w.String(actor.name);
  } else {
    w.Null();
  }
  w.Field("role", auth_enabled ? actor.role : std::string("admin"));
  w.Key("auth_enabled");
  w.Bool(auth_enabled);
  w.EndObject();
  HttpResponse r = HttpResponse::Json(w.Take());
  r.headers["Cache-Control"] = "no-store";
  return r;
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

void RegisterWebRoutes(Router& r, LiveFeed& feed, const WebOptions& options) {
  r.Get("/", PageHandler("pages/overview.html", options));
  r.Get("/workers", PageHandler("pages/workers.html", options));
  r.GetPrefix("/worker/", PageHandler("pages/worker.html", options));
  r.Get("/tasks", PageHandler("pages/tasks.html", options));
  r.Get("/audit", PageHandler("pages/audit.html", options));
  r.Get("/cost", PageHandler("pages/cost.html", options));
  r.Get("/queues", PageHandler("pages/queues.html", options));
  r.Get("/alerts", PageHandler("pages/alerts.html", options));
  r.GetPrefix("/task/", PageHandler("pages/task.html", options));
  r.GetPrefix("/task-type/", PageHandler("pages/task-type.html", options));
  r.GetPrefix("/static/", StaticFile);
  r.Get("/api/stalk/summary",
        [&feed](const HttpRequest&, const std::string&) { return HttpResponse::Json(feed.SummaryJson()); });
  r.Get("/api/stalk/whoami",
        [auth = options.auth_enabled](const HttpRequest&, const std::string&) { return WhoAmI(auth); });
  r.Get("/api/events/stream",
        [&feed](const HttpRequest&, const std::string&) { return HttpResponse::EventStream(feed.hub()); });
}

}  // namespace stalk
