// Stalk — Celery monitoring server.
// The dashboard's routes: pages (`/`, `/workers`, `/worker/<name>`, `/tasks`, `/task/<id>`), their
// static files (`/static/...`, with ETag and caching), and the three API extensions the pages use:
// `/api/stalk/summary` (counts by state and by worker, one pass), `/api/events/stream` (the live
// feed, server-sent events) and `/api/stalk/whoami` (the request's principal, so pages hide the
// remote-control buttons from viewers; the server refuses those routes to them on its own). Every
// page is an HTML shell plus external JS/CSS; the JS reads Stalk's JSON API and puts task data into
// the page as text only.
//
// Behind --url_prefix the server strips the prefix before routing; pages carry
// `<base href="/<prefix>/">` and use relative links only, so they work with and without a prefix.
// Security headers on every dashboard response: a Content-Security-Policy without 'unsafe-inline'
// (no inline script or style anywhere), X-Frame-Options DENY, Referrer-Policy no-referrer.
#pragma once

#include <string>

#include "http/router.h"
#include "state/shared_state.h"
#include "web/live_feed.h"

namespace stalk {

struct WebOptions {
  std::string url_prefix;  // as --url_prefix, with or without slashes
  // Flower's --tasks_columns: the tasks table's default columns, comma-separated.
  std::string tasks_columns = "name,uuid,state,args,kwargs,result,received,started,runtime,worker";
  // Credentials are configured (AuthGuard::Enabled). Without them Stalk is open, as Flower is, and
  // /api/stalk/whoami answers role "admin": every route is allowed.
  bool auth_enabled = false;
};

// The Content-Security-Policy the dashboard is served with.
extern const char* const kDashboardCsp;

// Registers the dashboard's routes. `feed` must outlive the router.
void RegisterWebRoutes(Router& router, LiveFeed& feed, const WebOptions& options);

// Escapes text for an HTML attribute value or text node (& < > " ').
std::string HtmlEscape(std::string_view text);

}  // namespace stalk
