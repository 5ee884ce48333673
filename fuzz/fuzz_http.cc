// Stalk — Celery monitoring server.
// fuzz_http: the request side of the HTTP layer without sockets — the target and headers decoded as
// http/http_server.cc does (UrlDecode, ParseQuery, lower-case header names), then Router::Dispatch
// over RegisterReadApi with a small live state (fuzz_targets.h has the input format).
#include <cctype>
#include <string>

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

std::string_view NextLine(std::string_view& in) {
  const size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
  if (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  return line;
}

}  // namespace

int FuzzHttp(const uint8_t* data, size_t size) {
  static Api* api = new Api();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view request_line = NextLine(in);
  const size_t sp = request_line.find(' ');
  HttpRequest r;
  r.method = std::string(request_line.substr(0, sp));
  std::string_view target = sp == std::string_view::npos ? "/" : request_line.substr(sp + 1);
  target = target.substr(0, target.find(' '));  // drop " HTTP/1.1"
  const size_t q = target.find('?');
  r.path = UrlDecode(target.substr(0, q), false);
  FuzzCheck(r.path.size() <= target.size(), "UrlDecode never grows its input");
  if (q != std::string_view::npos) {
    r.query = ParseQuery(target.substr(q + 1));
  }
  while (!in.empty()) {
    std::string_view line = NextLine(in);
    if (line.empty())
      break;
    const size_t colon = line.find(':');
    std::string name(line.substr(0, colon));
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    r.headers.emplace(std::move(name), std::string(value));
  }
  r.body = std::string(in);
  r.remote_addr = "127.0.0.1";

  const HttpResponse resp = api->router.Dispatch(r);
  FuzzCheck(resp.status >= 100 && resp.status <= 599, "a real HTTP status");
  if (resp.content_type.starts_with("application/json")) {
    CheckValidJson(resp.body, "JSON reply");
  }
  return 0;
}

}  // namespace stalk::fuzz
