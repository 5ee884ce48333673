// Stalk — Celery monitoring server.
// `stalk serve`: wires broker transport -> ingest pipeline -> state -> metrics/HTTP, and runs until
// SIGINT/SIGTERM. Start-up errors (bad option, port in use) exit non-zero with one clear line; broker
// errors never do: Stalk keeps serving and reconnecting.
#include <csignal>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "alerts/alerting.h"
#include "auth/auth_setup.h"
#include "cli/commands.h"
#include "cli/store_setup.h"
#include "common/log.h"
#include "control/control_stack.h"
#include "http/alert_routes.h"
#include "http/api_routes.h"
#include "http/control_routes.h"
#include "http/http_server.h"
#include "ingest/capture_file.h"
#include "ingest/ingest_pipeline.h"
#include "metrics/metrics.h"
#include "transport/redis_event_source.h"
#include "transport/redis_queue_reader.h"
#include "web/live_feed.h"
#include "web/web_routes.h"

namespace stalk {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    const size_t a = item.find_first_not_of(' ');
    const size_t b = item.find_last_not_of(' ');
    if (a != std::string::npos) {
      out.push_back(item.substr(a, b - a + 1));
    }
  }
  return out;
}

// Polls queue lengths for /metrics on its own thread, so a scrape never waits on the broker.
class QueuePoller {
 public:
  QueuePoller(RedisQueueReader& reader, const ApiContext& ctx, double interval)
      : reader_(reader), ctx_(ctx), interval_(interval) {}
  ~QueuePoller() { Stop(); }
  void Start() {
    thread_ = std::thread([this] {
      while (!stop_) {
        auto lengths = reader_.Lengths(KnownQueues(ctx_));
        if (lengths) {
          std::vector<QueueLength> snap;
          for (auto& q : *lengths) {
            snap.push_back(QueueLength{q.name, q.messages});
          }
          std::lock_guard lock(mu_);
          snapshot_ = std::move(snap);
        }
        for (double slept = 0; slept < interval_ && !stop_; slept += 0.1) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  std::vector<QueueLength> Snapshot() {
    std::lock_guard lock(mu_);
    return snapshot_;
  }

 private:
  RedisQueueReader& reader_;
  const ApiContext& ctx_;
  double interval_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<QueueLength> snapshot_;
};

// Queue -> workers that reported consuming it (inspect active_queues replies), for no_consumer alerts.
std::map<std::string, std::set<std::string>> QueueConsumers(const InspectCache& cache) {
  std::map<std::string, std::set<std::string>> out;
  for (const auto& [host, fields] : cache.Snapshot()) {
    for (const auto& [method, text] : fields) {
      if (method != "active_queues") continue;
      auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_array()) continue;
      for (const auto& q : j) {
        if (q.is_object() && q.contains("name") && q["name"].is_string()) out[q["name"].get<std::string>()].insert(host);
      }
    }
  }
  return out;
}

Result<std::vector<double>> ParseBuckets(const std::string& text) {
  std::vector<double> out;
  for (const auto& item : SplitList(text)) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) {
        return Error{"invalid bucket '" + item + "'"};
      }
    } catch (const std::exception&) {
      return Error{"invalid bucket '" + item + "'"};
    }
  }
  return out;
}

}  // namespace

int RunServe(ServeSettings s) {
  SetLogLevel(s.logging);
  auto log = Logger("stalk");
  if (s.broker.empty()) {
    log->error("no broker: pass --broker redis://host:6379/0 or set CELERY_BROKER_URL");
    return 2;
  }
  auto url = ParseBrokerUrl(s.broker);
  if (!url) {
    log->error("--broker: {}", url.error());
    return 2;
  }
  if (url->kind != BrokerUrl::Kind::kRedis) {
    log->error("--broker: {} is not supported yet; Stalk reads Redis brokers (redis://)", url->Redacted());
    return 2;
  }
  if (url->tls) {
    log->error("--broker: rediss:// (TLS) is not supported by this build");
    return 2;
  }
  auto buckets = ParseBuckets(s.task_runtime_metric_buckets);
  if (!buckets) {
    log->error("--task_runtime_metric_buckets: {}", buckets.error());
    return 2;
  }

  if (!s.alerts_config.empty()) {  // fail before opening anything (Alerting::Create loads it again)
    if (auto cfg = LoadAlertConfig(s.alerts_config); !cfg) {
      log->error("--alerts_config: {}", cfg.error());
      return 2;
    }
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  StateOptions so;
  so.max_tasks = static_cast<size_t>(std::max(0, s.max_tasks));
  so.max_workers = static_cast<size_t>(std::max(1, s.max_workers));
  so.purge_offline_workers = s.purge_offline_workers;
  so.max_field_bytes = static_cast<size_t>(std::max(64, s.max_field_bytes));
  so.max_traceback_bytes = static_cast<size_t>(std::max(64, s.max_traceback_bytes));
  SharedState state(so);
  IngestStats stats;

  MetricsOptions mo;
  mo.runtime_buckets = *buckets;
  const auto compat = SplitList(s.metrics_compat);
  mo.flower_compat = std::find(compat.begin(), compat.end(), "flower") != compat.end();
  mo.celery_exporter_compat = std::find(compat.begin(), compat.end(), "celery-exporter") != compat.end();
  mo.max_task_names = static_cast<size_t>(std::max(1, s.metrics_max_task_names));
  mo.max_workers = static_cast<size_t>(std::max(1, s.metrics_max_workers));
  Metrics metrics(mo);
  state.Write()->AddListener(&metrics);
  LiveFeed live_feed(state, &stats, WallNow);  // the dashboard's live feed (web/live_feed.h)
  state.Write()->AddListener(&live_feed);
  // Durable history (store/): restores recent tasks and workers before ingestion, then records.
  auto store = SetUpStore(s, state);
  if (!store) {
    log->error("{}", store.error());
    return 2;
  }

  IngestQueue queue(static_cast<size_t>(std::max(1, s.ingest_queue_mb)) << 20, stats);
  PipelineOptions po;
  po.max_message_bytes = static_cast<size_t>(std::max(1024, s.max_event_bytes));
  IngestPipeline pipeline(state, queue, stats, po);

  std::unique_ptr<CaptureWriter> capture;
  if (!s.capture.empty()) {
    auto w = CaptureWriter::Open(s.capture);
    if (!w) {
      log->error("--capture: {}", w.error());
      return 2;
    }
    capture.reset(*w);
  }

  RedisEventOptions eo;
  eo.global_keyprefix = s.global_keyprefix;
  eo.fanout_prefix = s.fanout_prefix;
  RedisEventSource source(*url, eo, stats, [&](std::string&& payload, double received_at) {
    RawMessage m{std::move(payload), received_at, {}, false};
    if (capture) {
      capture->Write(m);
    }
    queue.Push(std::move(m));
  });

  RedisQueueOptions qo;
  qo.global_keyprefix = s.global_keyprefix;
  RedisQueueReader queue_reader(*url, qo);

  ApiContext ctx;
  ctx.state = &state;
  ctx.ingest = &stats;
  ctx.broker_redacted = url->Redacted();
  ctx.extra_queues = SplitList(s.queues);
  ctx.extra_queues.emplace_back("celery");
  ctx.now = WallNow;
  ctx.started_at = WallNow();
  ctx.queue_lengths = [&](const std::vector<std::string>& names) -> Result<std::vector<QueueLengthEntry>> {
    auto r = queue_reader.Lengths(names);
    if (!r) {
      return Error{r.error()};
    }
    std::vector<QueueLengthEntry> out;
    for (auto& q : *r) {
      out.push_back({q.name, q.messages});
    }
    return out;
  };
  RedisQueueReader poll_reader(*url, qo);
  // Remote control, inspection and task sending (control/): cached inspect replies fill /api/workers,
  // workers' active_queues feed /api/queues/length.
  ControlStack control(*url, s.broker,
                       ControlSetup{s.global_keyprefix, s.fanout_prefix, s.inspect_timeout, s.http_threads,
                                    s.result_backend},
                       state, WallNow);
  state.Write()->AddListener(control.listener());
  ctx.refresh_workers = [&control](const std::string& worker) -> Result<bool> {
    auto o = control.service().RefreshWorkersGated(worker);
    if (o.status != ControlStatus::kOk) {
      return Error{o.body.value("error", std::string("Failed to update workers"))};
    }
    return true;
  };
  ctx.worker_inspect = [&control] { return control.cache().Snapshot(); };
  ctx.dynamic_queues = [&control] { return control.cache().QueueNames(); };
  ControlContext control_ctx{&control.service(), WallNow};
  QueuePoller poller(poll_reader, ctx, s.queue_poll_interval);
  // Alerting (alerts/): rules over live state and notifiers with --alerts_config, Sentry with SENTRY_DSN.
  const char* sentry_dsn = std::getenv("SENTRY_DSN");
  const char* sentry_env = std::getenv("SENTRY_ENVIRONMENT");
  auto alerting = Alerting::Create(
      AlertingSetup{s.alerts_config, sentry_dsn ? sentry_dsn : "", sentry_env ? sentry_env : "",
                    s.sentry_max_per_minute, "http://" + s.address + ":" + std::to_string(s.port) + "/api/alerts"},
      AlertSources{&state, &stats, [&poller] { return poller.Snapshot(); }, WallNow,
                   [&control] { return QueueConsumers(control.cache()); },
                   [&ctx]() -> std::optional<std::string> {  // set by WireStoreApi below, before Start
                     return ctx.store_problem ? ctx.store_problem() : std::nullopt;
                   }});
  if (!alerting) {
    log->error("{}", alerting.error());
    return 2;
  }
  if (*alerting) {
    (*alerting)->Attach(*state.Write());
  }
  ctx.render_metrics = [&](bool openmetrics) {
    const auto queues = poller.Snapshot();
    std::string body = metrics.Render(state, stats, queues, WallNow(), openmetrics);  // read lock in slices
    if (*alerting) {
      std::string extra;
      (*alerting)->RenderMetrics(extra, openmetrics);
      const size_t eof = openmetrics && body.ends_with("# EOF\n") ? body.size() - 6 : body.size();
      body.insert(eof, extra);
    }
    return body;
  };

  if (*store) {
    WireStoreApi(**store, ctx);
  }

  Router router;
  auto guard = MakeAuthGuard(
      AuthConfig{s.basic_auth, s.basic_auth_file, s.api_tokens_file, s.metrics_public, s.xheaders, s.address});
  if (!guard) {
    log->error("{}", guard.error());
    return 2;
  }
  router.SetGuard([g = *guard](const HttpRequest& req, std::string_view role) { return g->Check(req, role); });
  RegisterReadApi(router, ctx);
  RegisterControlApi(router, control_ctx);
  if (*alerting && (*alerting)->engine()) {
    AlertEngine* engine = (*alerting)->engine();
    RegisterAlertApi(router, AlertApi{[engine] { return engine->AlertsJson(WallNow()); },
                                      [engine] { return engine->SilencesJson(WallNow()); },
                                      [engine](const std::string& body) { return engine->AddSilence(body, WallNow()); },
                                      [engine](const std::string& id) { return engine->RemoveSilence(id); }});
  }
  RegisterWebRoutes(router, live_feed, WebOptions{s.url_prefix, s.tasks_columns});
  HttpServerOptions ho;
  ho.address = s.address;
  ho.port = s.port;
  ho.threads = std::max(1, s.http_threads);
  ho.url_prefix = s.url_prefix;
  HttpServer server(ho, router);
  server.Every(std::chrono::seconds(1), [&live_feed] { live_feed.Tick(); });
  auto bound = server.Start();
  if (!bound) {
    log->error("{}", bound.error());
    return 1;
  }
  pipeline.Start();
  control.Start();
  source.Start();
  poller.Start();
  if (*alerting) {
    (*alerting)->Start();
  }
  log->info("Stalk {} serving http://{}:{}{} — broker {}", STALK_VERSION, s.address, *bound,
            s.url_prefix.empty() ? "" : "/" + s.url_prefix, url->Redacted());

  int sig = 0;
  sigwait(&stop_signals, &sig);
  log->info("received signal {}, stopping", sig);
  server.Stop();
  if (*alerting) {
    (*alerting)->Stop();
  }
  poller.Stop();
  source.Stop();
  pipeline.Stop();
  control.Stop();
  if (*store) {
    (*store)->Stop();  // writes what ingestion left queued
  }
  return 0;
}

}  // namespace stalk
