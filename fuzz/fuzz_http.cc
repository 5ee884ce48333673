// Stalk — Celery monitoring server.
// fuzz_http: the request side of the HTTP layer without sockets — the target and headers decoded as
// http/http_server.cc does (UrlDecode, ParseQuery, lower-case header names), then Router::Dispatch
// over RegisterReadApi with a small live state (fuzz_targets.h has the input format).
#include <string>

#include "fuzz_request.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "http/api_routes.h"
#include "http/http_request.h"
#include "http/router.h"

namespace stalk::fuzz {
namespace {

struct Api {
  IngestStats ingest;
  ApiContext ctx;
  Router router;

  Api() {
    ingest.messages_received = 12;
    ingest.events_ingested = 20;
    ingest.broker_connected = true;
    ctx.state = &SampleState();
    ctx.ingest = &ingest;
    ctx.broker_redacted = "redis://:***@127.0.0.1:6379/0";
    ctx.extra_queues = {"celery"};
    ctx.queue_lengths = [](const std::vector<std::string>& names) -> Result<std::vector<QueueLengthEntry>> {
      std::vector<QueueLengthEntry> out;
      for (const auto& n : names)
        out.push_back({n, static_cast<int64_t>(n.size())});
      return out;
    };
    ctx.render_metrics = [](bool openmetrics) {
      return std::string(openmetrics ? "# EOF\n" : "flower_events_total 1\n");
    };
    ctx.refresh_workers = [](const std::string&) -> Result<bool> { return true; };
    ctx.worker_inspect = [] {
      std::map<std::string, InspectedFields> m;
      m["w1@lab"] = {{"registered", "[\"proj.tasks.add\"]"}, {"active_queues", "[{\"name\": \"celery\"}]"}};
      return m;
    };
    ctx.dynamic_queues = [] { return std::vector<std::string>{"dynamic"}; };
    ctx.now = [] { return SampleNow(); };
    ctx.started_at = SampleNow() - 60;
    RegisterReadApi(router, ctx);
  }
};

}  // namespace

int FuzzHttp(const uint8_t* data, size_t size) {
  static Api* api = new Api();
  const HttpRequest r = RequestFromText(std::string_view(reinterpret_cast<const char*>(data), size));

  const HttpResponse resp = api->router.Dispatch(r);
  FuzzCheck(resp.status >= 100 && resp.status <= 599, "a real HTTP status");
  if (resp.content_type.starts_with("application/json")) {
    CheckValidJson(resp.body, "JSON reply");
  }
  return 0;
}

}  // namespace stalk::fuzz
