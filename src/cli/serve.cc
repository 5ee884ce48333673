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
#include "auth/auth_metrics.h"
#include "auth/auth_setup.h"
#include "cli/commands.h"
#include "cli/feature_wiring.h"
#include "cli/store_setup.h"
#include "common/clock.h"
#include "common/log.h"
#include "control/control_stack.h"
#include "custom/custom_routes.h"
#include "custom/metric_rules.h"
#include "http/alert_routes.h"
#include "http/api_routes.h"
#include "http/audit_routes.h"
#include "http/control_routes.h"
#include "http/history_routes.h"
#include "http/http_server.h"
#include "ingest/capture_file.h"
#include "ingest/ingest_pipeline.h"
#include "metrics/metrics.h"
#include "transport/amqp_event_source.h"
#include "transport/amqp_queue_reader.h"
#include "transport/rabbitmq_management.h"
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
  QueuePoller(QueueLengthFn lengths, const ApiContext& ctx, double interval)
      : lengths_(std::move(lengths)), ctx_(ctx), interval_(interval) {}
  ~QueuePoller() { Stop(); }
  void Start() {
    thread_ = std::thread([this] {
      while (!stop_) {
        auto lengths = lengths_(KnownQueues(ctx_));
        if (lengths) {
          std::vector<QueueLength> snap;
          for (auto& q : *lengths) {
            snap.push_back(QueueLength{q.name, q.messages, q.consumers});
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
  QueueLengthFn lengths_;
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
      if (method != "active_queues")
        continue;
      auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (!j.is_array())
        continue;
      for (const auto& q : j) {
        if (q.is_object() && q.contains("name") && q["name"].is_string())
          out[q["name"].get<std::string>()].insert(host);
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
  const bool amqp = url->kind == BrokerUrl::Kind::kAmqp;
  if (url->tls && !amqp) {
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
  sigaddset(&stop_signals, SIGHUP);  // reloads --metric_rules
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
  // Custom events and worker-time cost (custom/): what Celery's state machine leaves out.
  CustomEvents custom_events;
  state.Write()->AddListener(&custom_events);
  CostLedger cost_ledger;
  state.Write()->AddListener(&cost_ledger);
  CustomApi custom_api{&custom_events, &cost_ledger, s.cost_per_worker_hour};
  MetricRules metric_rules;
  SlaTracker sla;  // targets from the --metric_rules file's sla: section
  custom_api.sla = &sla;
  custom_api.now = UnixSeconds;
  state.Write()->AddListener(&sla);
  if (!s.metric_rules.empty()) {
    auto loaded = metric_rules.Load(s.metric_rules);
    if (!loaded) {
      log->error("--metric_rules: {}", loaded.error());
      return 2;
    }
    auto targets = sla.Load(s.metric_rules);
    if (!targets) {
      log->error("--metric_rules: {}", targets.error());
      return 2;
    }
    log->info("business-metric rules: {} and {} SLA targets loaded from {}", *loaded, *targets, s.metric_rules);
    state.Write()->AddListener(&metric_rules);
  }
  LiveFeed live_feed(state, &stats, UnixSeconds);  // the dashboard's live feed (web/live_feed.h)
  state.Write()->AddListener(&live_feed);
  // Durable history (store/): opened here; restored once the API serves, before ingestion applies.
  auto store = SetUpStore(s, &stats.shed);
  if (!store) {
    log->error("{}", store.error());
    return 2;
  }

  IngestQueue queue(static_cast<size_t>(std::max(1, s.ingest_queue_mb)) << 20, stats);
  PipelineOptions po;
  po.max_message_bytes = static_cast<size_t>(std::max(1024, s.max_event_bytes));
  if (const char* delay = std::getenv("STALK_TEST_WRITER_DELAY_US")) {  // fault tests only (test_faults.py)
    po.test_writer_delay_us = std::atoi(delay);
  }
  std::unique_ptr<CaptureWriter> capture;
  if (!s.capture.empty()) {
    auto w = CaptureWriter::Open(s.capture);
    if (!w) {
      log->error("--capture: {}", w.error());
      return 2;
    }
    capture.reset(*w);
    po.capture = capture.get();
  }
  IngestPipeline pipeline(state, queue, stats, po);

  auto push = [&](RawMessage&& m) { queue.Push(std::move(m)); };
  // The event source and queue-length readers for the broker kind (Redis or RabbitMQ).
  std::unique_ptr<RedisEventSource> redis_source;
  std::unique_ptr<AmqpEventSource> amqp_source;
  QueueLengthFn queue_lengths;
  QueueLengthFn poll_lengths;
  if (amqp) {
    AmqpEventOptions ao;
    ao.queue_ttl_s = s.event_queue_ttl;
    ao.queue_expires_s = s.event_queue_expires;
    ao.prefetch = s.event_prefetch;
    ao.heartbeat_s = std::max(0, s.broker_heartbeat);
    amqp_source = std::make_unique<AmqpEventSource>(
        *url, ao, stats, [&](std::string&& body, std::string_view content_type, double received_at) {
          push(RawMessage{std::move(body), received_at, std::string(content_type), true});
        });
    // Passive declare, or the management API when --broker_api is given (falling back to passive
    // declare while the API fails).
    auto make = [&]() -> QueueLengthFn {
      auto reader = std::make_shared<AmqpQueueReader>(*url);
      if (s.broker_api.empty()) {
        return [reader](const std::vector<std::string>& q) { return reader->Lengths(q); };
      }
      auto api = std::make_shared<RabbitManagementReader>(s.broker_api, url->vhost);
      return [reader, api](const std::vector<std::string>& q) {
        auto r = api->Lengths(q);
        if (r)
          return r;
        Logger("amqp")->warn("{}; using passive queue.declare", r.error());
        return reader->Lengths(q);
      };
    };
    queue_lengths = make();
    poll_lengths = make();
  } else {
    RedisEventOptions eo;
    eo.global_keyprefix = s.global_keyprefix;
    eo.fanout_prefix = s.fanout_prefix;
    redis_source = std::make_unique<RedisEventSource>(*url, eo, stats, [&](std::string&& payload, double received_at) {
      push(RawMessage{std::move(payload), received_at, {}, false});
    });
    RedisQueueOptions qo;
    qo.global_keyprefix = s.global_keyprefix;
    auto reader = std::make_shared<RedisQueueReader>(*url, qo);
    queue_lengths = [reader](const std::vector<std::string>& q) { return reader->Lengths(q); };
    auto poll_reader = std::make_shared<RedisQueueReader>(*url, qo);
    poll_lengths = [poll_reader](const std::vector<std::string>& q) { return poll_reader->Lengths(q); };
  }

  ApiContext ctx;
  ctx.state = &state;
  ctx.ingest = &stats;
  ctx.broker_redacted = url->Redacted();
  ctx.extra_queues = SplitList(s.queues);
  ctx.extra_queues.emplace_back("celery");
  ctx.now = UnixSeconds;
  ctx.started_at = UnixSeconds();
  ctx.queue_lengths = [&](const std::vector<std::string>& names) -> Result<std::vector<QueueLengthEntry>> {
    auto r = queue_lengths(names);
    if (!r) {
      return Error{r.error()};
    }
    std::vector<QueueLengthEntry> out;
    for (auto& q : *r) {
      out.push_back({q.name, q.messages, q.consumers});
    }
    return out;
  };
  // Remote control, inspection and task sending (control/): cached inspect replies fill /api/workers,
  // workers' active_queues feed /api/queues/length.
  ControlStack control(
      *url, s.broker,
      ControlSetup{s.global_keyprefix, s.fanout_prefix, s.inspect_timeout, s.http_threads, s.result_backend}, state,
      UnixSeconds);
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
  ControlContext control_ctx{&control.service(), UnixSeconds};
  // Audit log of control actions: in memory for the API, and in the store when history is on.
  AuditLog audit_log;
  control.service().SetAuditLog(&audit_log);
  AuditApi audit_api{&audit_log, nullptr};
  if (*store) {
    StoreWriter* writer = store->get();
    audit_log.SetSink([writer](const AuditEntry& e) { writer->RecordAudit(e); });
    audit_api.stored = [writer](size_t limit) -> Result<std::vector<AuditEntry>> {
      auto db = writer->store();
      if (!db) {
        return Error{"the store is not open"};
      }
      return db->LoadAudit(limit);
    };
  }
  QueuePoller poller(poll_lengths, ctx, s.queue_poll_interval);
  // Alerting (alerts/): rules over live state and notifiers with --alerts_config, Sentry with SENTRY_DSN.
  const char* sentry_dsn = std::getenv("SENTRY_DSN");
  const char* sentry_env = std::getenv("SENTRY_ENVIRONMENT");
  auto alerting = Alerting::Create(
      AlertingSetup{s.alerts_config, sentry_dsn ? sentry_dsn : "", sentry_env ? sentry_env : "",
                    s.sentry_max_per_minute, "http://" + s.address + ":" + std::to_string(s.port) + "/api/alerts"},
      AlertSources{&state, &stats, [&poller] { return poller.Snapshot(); }, UnixSeconds,
                   [&control] { return QueueConsumers(control.cache()); },
                   [&ctx]() -> std::optional<std::string> {  // set by WireStoreApi below, before Start
                     return ctx.store_problem ? ctx.store_problem() : std::nullopt;
                   },
                   [&control]() -> std::optional<std::string> {
                     return control.result_backend() ? control.result_backend()->Problem() : std::nullopt;
                   }});
  if (!alerting) {
    log->error("{}", alerting.error());
    return 2;
  }
  if (*alerting) {
    (*alerting)->Attach(*state.Write());
    if (*store && (*alerting)->engine()) {
      WirePersistedSilences(*(*alerting)->engine(), **store);
    }
  }
  if (*store) {
    custom_api.stored_cost = StoredCost(**store);
  }
  ctx.result_backend_problem = [&control]() -> std::optional<std::string> {
    return control.result_backend() ? control.result_backend()->Problem() : std::nullopt;
  };
  ctx.render_metrics = [&](bool openmetrics) {
    const auto queues = poller.Snapshot();
    std::string body = metrics.Render(state, stats, queues, UnixSeconds(), openmetrics);  // read lock in slices
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
  ctx.task_extra_fields = [&custom_events](const std::string& id) { return custom_events.TaskJsonFields(id); };
  ctx.render_metrics = [&custom_api, &metric_rules, &control, &live_feed,
                        inner = std::move(ctx.render_metrics)](bool openmetrics) {
    std::string text = inner(openmetrics);
    AppendCustomMetrics(custom_api, openmetrics, text);
    metric_rules.Append(openmetrics, text);
    live_feed.AppendMetrics(openmetrics, text);
    if (const RedisResultBackend* backend = control.result_backend()) {
      std::string extra;
      backend->RenderMetrics(openmetrics, extra);
      const size_t eof = openmetrics && text.ends_with("# EOF\n") ? text.size() - 6 : text.size();
      text.insert(eof, extra);
    }
    return text;
  };

  Router router;
  AuthConfig auth_config{s.basic_auth, s.basic_auth_file, s.api_tokens_file,  s.metrics_public,
                         s.xheaders,   s.address,         s.insecure_no_auth, !s.unix_socket.empty()};
  auth_config.oidc.provider = s.auth_provider;
  auth_config.oidc.issuer = s.oidc_issuer;
  auth_config.oidc.client_id = s.oauth2_key;
  auth_config.oidc.client_secret = s.oauth2_secret;
  auth_config.oidc.redirect_uri = s.oauth2_redirect_uri;
  auth_config.oidc.email_regex = s.auth;
  auth_config.oidc.ca_file = s.oidc_ca_file;
  auth_config.oidc.url_prefix = s.url_prefix;
  auth_config.oidc.tls = !s.certfile.empty();
  auth_config.oidc.xheaders = s.xheaders;
  auth_config.oidc_role = s.oidc_role;
  auth_config.cookie_secret = s.cookie_secret;
  auto guard = MakeAuthGuard(auth_config);
  if (!guard) {
    log->error("{}", guard.error());
    return 2;
  }
  router.SetGuard([g = *guard](const HttpRequest& req, std::string_view role) { return g->Check(req, role); });
  ctx.render_metrics = [g = *guard, &audit_log, inner = std::move(ctx.render_metrics)](bool openmetrics) {
    std::string text = inner(openmetrics);
    AppendAuthMetrics(*g, audit_log.recorded(), openmetrics, text);
    return text;
  };
  RegisterReadApi(router, ctx);
  RegisterControlApi(router, control_ctx);
  RegisterAuditApi(router, audit_api);
  HistoryApi history_api;
  if (*store) {
    history_api.search = [writer = store->get()](const TaskSearch& q) -> Result<std::vector<TaskRecord>> {
      auto db = writer->store();
      if (!db)
        return Error{"the store is not open"};
      return db->SearchTasks(q);
    };
  }
  RegisterHistoryApi(router, history_api);
  RegisterCustomApi(router, custom_api);
  if ((*guard)->oidc()) {
    RegisterOidcRoutes(router, *(*guard)->oidc());
  }
  if (*alerting && (*alerting)->engine()) {
    AlertEngine* engine = (*alerting)->engine();
    RegisterAlertApi(router,
                     AlertApi{[engine] { return engine->AlertsJson(UnixSeconds()); },
                              [engine] { return engine->SilencesJson(UnixSeconds()); },
                              [engine](const std::string& body) { return engine->AddSilence(body, UnixSeconds()); },
                              [engine](const std::string& id) { return engine->RemoveSilence(id); }});
  }
  RegisterWebRoutes(router, live_feed, WebOptions{s.url_prefix, s.tasks_columns, (*guard)->Enabled()});
  HttpServerOptions ho;
  ho.address = s.address;
  ho.port = s.port;
  ho.threads = std::max(1, s.http_threads);
  ho.stream_write_timeout_seconds = std::max(1, s.stream_write_timeout);
  ho.url_prefix = s.url_prefix;
  ho.certfile = s.certfile;
  ho.keyfile = s.keyfile;
  ho.unix_socket = s.unix_socket;
  HttpServer server(ho, router);
  server.Every(std::chrono::seconds(1), [&live_feed] { live_feed.Tick(); });
  auto bound = server.Start();
  if (!bound) {
    log->error("{}", bound.error());
    return 1;
  }
  // Events are received (and wait in the ingest queue) while history is restored; they are applied
  // after it, so a restored record never overwrites a newer live one and none published meanwhile is
  // lost. The API serves throughout: /healthcheck says "restoring history", /api/task/info reads the
  // store for a task not loaded yet.
  control.Start();
  if (amqp_source)
    amqp_source->Start();
  if (redis_source)
    redis_source->Start();
  poller.Start();
  const std::string prefix = s.url_prefix.empty() ? "" : "/" + s.url_prefix;
  if (s.unix_socket.empty()) {
    log->info("Stalk {} serving {}://{}:{}{} — broker {}", STALK_VERSION, s.certfile.empty() ? "http" : "https",
              s.address, *bound, prefix, url->Redacted());
  } else {
    log->info("Stalk {} serving http on unix:{}{} — broker {}", STALK_VERSION, s.unix_socket, prefix, url->Redacted());
  }
  if (*store) {
    RestoreAndStartStore(**store, s, state);
  }
  pipeline.Start();
  if (*alerting) {
    (*alerting)->Start();  // after the restore: rules judge the whole state, not a half-loaded one
  }

  int sig = 0;
  while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP) {
    if (s.metric_rules.empty()) {
      log->info("SIGHUP: nothing to reload");
      continue;
    }
    // The listener is registered at start-up only: reloading an empty file keeps it, harmlessly.
    if (auto r = metric_rules.Load(s.metric_rules)) {
      log->info("SIGHUP: {} business-metric rules reloaded from {} (series kept)", *r, s.metric_rules);
      if (auto t = sla.Load(s.metric_rules); !t) {
        log->error("SIGHUP: SLA targets not reloaded, the previous ones stay: {}", t.error());
      }
    } else {
      log->error("SIGHUP: --metric_rules not reloaded, the previous rules stay: {}", r.error());
    }
  }
  log->info("received signal {}, stopping", sig);
  server.Stop();
  if (*alerting) {
    (*alerting)->Stop();
  }
  poller.Stop();
  if (amqp_source)
    amqp_source->Stop();
  if (redis_source)
    redis_source->Stop();
  pipeline.Stop();
  control.Stop();
  if (*store) {
    (*store)->Stop();  // writes what ingestion left queued
  }
  return 0;
}

}  // namespace stalk
