// Stalk — Celery monitoring server.
// Unit tests of web/ and of the event-stream side of http/: the embedded assets (types, ETags, no
// inline script/style, no HTML sinks in the JS), page routes (base href for --url_prefix, security
// headers, escaped --tasks_columns), static caching (ETag/304, versioned URLs), ClusterSummary and
// LiveFeed payloads, and a real HttpServer streaming SSE to a socket client, including dropping a
// client that does not read.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "common/audit_log.h"
#include "http/http_server.h"
#include "http/router.h"
#include "http/sse_hub.h"
#include "protocol/event.h"
#include "state/shared_state.h"
#include "web/assets.h"
#include "web/cluster_summary.h"
#include "web/live_feed.h"
#include "web/web_routes.h"

namespace stalk {
namespace {

using json = nlohmann::json;

HttpResponse Get(const Router& r, std::string path, std::map<std::string, std::string> query = {},
                 std::map<std::string, std::string> headers = {}) {
  HttpRequest req;
  req.method = "GET";
  req.path = std::move(path);
  req.query = std::move(query);
  req.headers = std::move(headers);
  return r.Dispatch(req);
}

Event TaskEv(std::string_view type, std::string_view uuid, double ts, std::string_view host) {
  Event e;
  e.type = type;
  e.kind = ClassifyEventType(type);
  e.uuid = uuid;
  e.hostname = host;
  e.timestamp = ts;
  e.has_timestamp = true;
  return e;
}

Event Heartbeat(std::string_view host, double ts) {
  Event e;
  e.type = "worker-heartbeat";
  e.kind = ClassifyEventType(e.type);
  e.hostname = host;
  e.timestamp = ts;
  e.has_timestamp = true;
  e.freq = 2.0;
  return e;
}

constexpr std::string_view kU1 = "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a";
constexpr std::string_view kU2 = "53970e5b-3f4c-4b7f-9d0e-2b8c1f6a7d11";
constexpr std::string_view kU3 = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";

// ------------------------------------------------------------------ assets

TEST(WebAssets, EveryPageAndScriptIsEmbeddedWithItsType) {
  for (const char* page :
       {"pages/overview.html", "pages/workers.html", "pages/worker.html", "pages/tasks.html", "pages/task.html"}) {
    const WebAsset* a = FindWebAsset(page);
    ASSERT_NE(a, nullptr) << page;
    EXPECT_EQ(a->content_type, "text/html; charset=utf-8");
  }
  ASSERT_NE(FindWebAsset("static/app.css"), nullptr);
  EXPECT_EQ(FindWebAsset("static/app.css")->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(FindWebAsset("static/tasks.js")->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(FindWebAsset("static/favicon.svg")->content_type, "image/svg+xml");
  EXPECT_EQ(FindWebAsset("static/nope.js"), nullptr);
  EXPECT_EQ(WebAssetsVersion().size(), 12u);
  for (const WebAsset& a : WebAssets()) {
    EXPECT_EQ(a.etag.size(), 18u) << a.name;  // quoted 16 hex digits
    EXPECT_FALSE(a.body.empty()) << a.name;
  }
}

TEST(WebAssets, NoInlineScriptOrStyleAndNoHtmlSinks) {
  for (const WebAsset& a : WebAssets()) {
    const std::string body(a.body);
    if (a.name.ends_with(".html")) {
      // Every <script> has a src (the CSP has no 'unsafe-inline'); no style attributes or blocks.
      for (size_t at = body.find("<script"); at != std::string::npos; at = body.find("<script", at + 1)) {
        EXPECT_NE(body.substr(at, body.find('>', at) - at).find(" src="), std::string::npos) << a.name;
      }
      EXPECT_EQ(body.find(" style="), std::string::npos) << a.name;
      EXPECT_EQ(body.find("<style"), std::string::npos) << a.name;
      EXPECT_EQ(body.find("http://"), std::string::npos) << a.name << ": no external resources";
      EXPECT_EQ(body.find("https://"), std::string::npos) << a.name << ": no external resources";
    }
    if (a.name.ends_with(".js")) {
      for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("}) {
        EXPECT_EQ(body.find(sink), std::string::npos) << a.name << " uses " << sink;
      }
    }
  }
}

// ------------------------------------------------------------------ routes

struct WebFixture : ::testing::Test {
  SharedState state{StateOptions{}};
  double now = 1000;
  LiveFeed feed{state, nullptr, [this] { return now; }};
  Router router;
};

TEST_F(WebFixture, PagesCarryBaseHrefAndSecurityHeaders) {
  WebOptions o;
  o.url_prefix = "/flower/";
  RegisterWebRoutes(router, feed, o);
  for (const char* path : {"/", "/workers", "/worker/w1@host", "/tasks", "/task/abc", "/tasks/"}) {
    HttpResponse r = Get(router, path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_NE(r.body.find("<base href=\"/flower/\">"), std::string::npos) << path;
    EXPECT_EQ(r.body.find("{{"), std::string::npos) << path << ": unfilled placeholder";
    EXPECT_EQ(r.headers["Content-Security-Policy"], kDashboardCsp);
    EXPECT_EQ(r.headers["X-Frame-Options"], "DENY");
    EXPECT_EQ(r.headers["Referrer-Policy"], "no-referrer");
  }
  EXPECT_EQ(std::string(kDashboardCsp).find("unsafe"), std::string::npos);
  EXPECT_NE(Get(router, "/tasks").body.find("static/tasks.js?v=" + std::string(WebAssetsVersion())), std::string::npos);
}

TEST_F(WebFixture, NoPrefixMeansRootBaseAndColumnsAreEscaped) {
  WebOptions o;
  o.tasks_columns = "name,state\"><script>x</script>";
  RegisterWebRoutes(router, feed, o);
  const std::string body = Get(router, "/tasks").body;
  EXPECT_NE(body.find("<base href=\"/\">"), std::string::npos);
  EXPECT_NE(body.find("data-columns=\"name,state&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""), std::string::npos);
  EXPECT_EQ(body.find("<script>x"), std::string::npos);
}

TEST_F(WebFixture, StaticFilesHaveEtagsAndCacheByVersion) {
  RegisterWebRoutes(router, feed, WebOptions{});
  HttpResponse r = Get(router, "/static/app.css");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/css; charset=utf-8");
  EXPECT_EQ(r.headers["ETag"], FindWebAsset("static/app.css")->etag);
  EXPECT_EQ(r.headers["Cache-Control"], "no-cache");
  EXPECT_EQ(r.body, FindWebAsset("static/app.css")->body);

  HttpResponse versioned = Get(router, "/static/app.css", {{"v", std::string(WebAssetsVersion())}});
  EXPECT_EQ(versioned.headers["Cache-Control"], "public, max-age=31536000, immutable");

  HttpResponse again = Get(router, "/static/app.css", {}, {{"if-none-match", r.headers["ETag"]}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Get(router, "/static/app.css", {}, {{"if-none-match", "\"other\""}}).status, 200);

  EXPECT_EQ(Get(router, "/static/missing.js").status, 404);
  EXPECT_EQ(Get(router, "/static/../pages/tasks.html").status, 404);  // pages are not static files
  EXPECT_EQ(Get(router, "/worker/").status, 404);
}

TEST_F(WebFixture, WhoAmIAnswersTheGuardsPrincipalOrAdminWhenOpen) {
  RegisterWebRoutes(router, feed, WebOptions{});
  json open = json::parse(Get(router, "/api/stalk/whoami").body);
  EXPECT_EQ(open, json::parse(R"({"user": null, "role": "admin", "auth_enabled": false})"));

  Router secured;
  WebOptions o;
  o.auth_enabled = true;
  RegisterWebRoutes(secured, feed, o);
  // The guard runs before the handler on the same thread and names the principal it admitted.
  secured.SetGuard([](const HttpRequest& req, std::string_view) -> std::optional<HttpResponse> {
    SetAuditActor(AuditActor{req.Header("x-test-user"), req.Header("x-test-role"), "127.0.0.1"});
    return std::nullopt;
  });
  HttpResponse r = Get(secured, "/api/stalk/whoami", {}, {{"x-test-user", "watcher"}, {"x-test-role", "viewer"}});
  EXPECT_EQ(r.headers["Cache-Control"], "no-store");
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"user": "watcher", "role": "viewer", "auth_enabled": true})"));
  r = Get(secured, "/api/stalk/whoami", {}, {{"x-test-user", "ops"}, {"x-test-role", "operator"}});
  EXPECT_EQ(json::parse(r.body)["role"], "operator");
}

// ------------------------------------------------------------------ summary and live feed

TEST_F(WebFixture, SummaryCountsByStateAndWorkerInOnePass) {
  {
    auto st = state.Write();
    st->AddListener(&feed);
    st->Apply(Heartbeat("w1@h", 999), 999);
    st->Apply(TaskEv("task-received", kU1, 999.1, "w1@h"), 999.1);
    st->Apply(TaskEv("task-succeeded", kU1, 999.2, "w1@h"), 999.2);
    st->Apply(TaskEv("task-received", kU2, 999.3, "w1@h"), 999.3);
    st->Apply(TaskEv("task-failed", kU2, 999.4, "w1@h"), 999.4);
    st->Apply(TaskEv("task-received", kU3, 999.5, "w2@h"), 999.5);
    st->Apply(TaskEv("task-progress", kU3, 999.6, "w2@h"), 999.6);
    Event offline = Heartbeat("w2@h", 999.7);
    offline.type = "worker-offline";
    offline.kind = ClassifyEventType(offline.type);
    st->Apply(offline, 999.7);
  }
  const json s = json::parse(feed.SummaryJson());
  EXPECT_EQ(s["tasks"]["total"], 3);
  EXPECT_EQ(s["tasks"]["by_state"]["SUCCESS"], 1);
  EXPECT_EQ(s["tasks"]["by_state"]["FAILURE"], 1);
  EXPECT_EQ(s["tasks"]["by_state"]["PENDING"], 0);
  EXPECT_EQ(s["tasks"]["by_state"]["PROGRESS"], 1) << s.dump();
  EXPECT_EQ(s["by_worker"]["w1@h"]["SUCCESS"], 1);
  EXPECT_EQ(s["by_worker"]["w1@h"]["FAILURE"], 1);
  EXPECT_EQ(s["by_worker"]["w2@h"]["CUSTOM"], 1);
  EXPECT_EQ(s["workers"]["online"], 1);
  EXPECT_EQ(s["workers"]["offline"], 1);  // w2 said worker-offline
  EXPECT_EQ(s["transitions"]["SUCCESS"], 1);
  EXPECT_EQ(s["transitions"]["FAILURE"], 1);
  EXPECT_EQ(s["transitions"]["RECEIVED"], 3);
  EXPECT_EQ(s["streams"]["open"], 0);
}

TEST_F(WebFixture, TickSendsChangedIdsOnceAndNewestFirst) {
  state.Write()->AddListener(&feed);
  {
    auto st = state.Write();
    st->Apply(TaskEv("task-received", kU1, 999.1, "w1@h"), 999.1);
    st->Apply(TaskEv("task-received", kU2, 999.2, "w1@h"), 999.2);
    st->Apply(TaskEv("task-started", kU1, 999.3, "w1@h"), 999.3);
  }
  json m = json::parse(feed.Tick());
  EXPECT_EQ(m["changed"], json::array({std::string(kU2), std::string(kU1)}));
  EXPECT_EQ(m["changed_overflow"], false);
  EXPECT_EQ(m["tasks"]["by_state"]["STARTED"], 1);
  EXPECT_EQ(m["tasks"]["by_state"]["RECEIVED"], 1);
  m = json::parse(feed.Tick());
  EXPECT_TRUE(m["changed"].empty()) << "changes are reported once";
}

TEST_F(WebFixture, TooManyChangesSetOverflowInsteadOfGrowing) {
  state.Write()->AddListener(&feed);
  std::vector<std::string> ids;
  for (size_t i = 0; i < LiveFeed::kMaxChangedIds + 10; ++i) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "00000000-0000-4000-8000-%012zu", i);
    ids.emplace_back(buf);
  }
  {
    auto st = state.Write();
    for (const auto& id : ids) {
      st->Apply(TaskEv("task-received", id, 999, "w1@h"), 999);
    }
  }
  const json m = json::parse(feed.Tick());
  EXPECT_EQ(m["changed_overflow"], true);
  EXPECT_EQ(m["changed"].size(), LiveFeed::kMaxChangedIds);
  EXPECT_EQ(m["changed"][0], ids.back()) << "the newest are kept";
}

TEST(SseHub, FramesMultiLineData) {
  EXPECT_EQ(SseHub::Frame("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(SseHub::Frame("a\nb", "tick"), "event: tick\ndata: a\ndata: b\n\n");
}

// ------------------------------------------------------------------ streaming over a real socket

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Reads until `needle` shows up (or 5 s / EOF); returns everything read.
std::string ReadUntil(int fd, std::string_view needle, std::string& buffer) {
  char chunk[4096];
  while (buffer.find(needle) == std::string::npos) {
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      break;
    }
    buffer.append(chunk, static_cast<size_t>(n));
  }
  return buffer;
}

template <typename F>
bool WaitFor(F cond, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

TEST(EventStream, ServerStreamsChunkedEventsAndKeepsServingRequests) {
  SseHub hub;
  Router router;
  router.Get("/stream", [&hub](const HttpRequest&, const std::string&) { return HttpResponse::EventStream(hub); });
  router.Get("/ping", [](const HttpRequest&, const std::string&) { return HttpResponse::Text("pong"); });
  HttpServerOptions o;
  o.port = 0;
  o.threads = 1;  // one thread: an open stream must not hold it
  HttpServer server(o, router);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.error();
  hub.Broadcast("first");

  const int fd = Connect(*port);
  ASSERT_GE(fd, 0);
  const std::string req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::string got;
  ReadUntil(fd, "data: first\n\n", got);
  EXPECT_NE(got.find("Content-Type: text/event-stream"), std::string::npos) << got;
  EXPECT_NE(got.find("Transfer-Encoding: chunked"), std::string::npos) << got;
  EXPECT_NE(got.find("data: first\n\n"), std::string::npos) << "the latest event greets a new stream: " << got;
  ASSERT_TRUE(WaitFor([&] { return hub.open_streams() == 1; }));

  // Another request on the single server thread is answered while the stream is open.
  const int fd2 = Connect(*port);
  const std::string ping = "GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(write(fd2, ping.data(), ping.size()), static_cast<ssize_t>(ping.size()));
  std::string pong;
  ReadUntil(fd2, "pong", pong);
  EXPECT_NE(pong.find("pong"), std::string::npos);
  close(fd2);

  hub.Broadcast("second");
  got.clear();
  ReadUntil(fd, "data: second\n\n", got);
  EXPECT_NE(got.find("e\r\ndata: second\n\n\r\n"), std::string::npos) << "one chunk per event: " << got;

  close(fd);
  // The closed stream disappears from the hub at the next broadcast.
  EXPECT_TRUE(WaitFor([&] {
    hub.Broadcast("third");
    return hub.open_streams() == 0;
  }));
  EXPECT_EQ(hub.dropped_slow(), 0u);
  server.Stop();
}

TEST(EventStream, ClientThatDoesNotReadIsDroppedAtTheBound) {
  SseHub hub;
  Router router;
  router.Get("/stream", [&hub](const HttpRequest&, const std::string&) { return HttpResponse::EventStream(hub); });
  HttpServerOptions o;
  o.port = 0;
  o.threads = 1;
  o.max_stream_unsent_bytes = 256 << 10;
  HttpServer server(o, router);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.error();

  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);  // fills fast
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  ASSERT_TRUE(WaitFor([&] { return hub.open_streams() == 1 || (hub.Broadcast("x"), false); }));

  // Never read: the kernel buffers fill, then the server's queue, then the client is dropped.
  const std::string big(64 << 10, 'x');
  EXPECT_TRUE(WaitFor(
      [&] {
        hub.Broadcast(big);
        return hub.dropped_slow() == 1;
      },
      std::chrono::seconds(20)))
      << "a client that never reads must be dropped";
  EXPECT_TRUE(WaitFor([&] {
    hub.Broadcast("y");
    return hub.open_streams() == 0;
  }));
  close(fd);
  server.Stop();
}

}  // namespace
}  // namespace stalk
