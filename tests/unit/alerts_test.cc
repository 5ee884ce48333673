// Stalk — Celery monitoring server.
// Unit tests of alerts/: rules-file parsing and its errors, the pending -> firing -> resolved lifecycle
// with an injected clock (dedup, `for`, repeat_interval, silences), task-outcome windows, channel
// payloads (PagerDuty dedup keys, HMAC), Sentry's DSN/exception/traceback parsing and envelope, and
// the Prometheus rules export.
#include <gtest/gtest.h>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "alerts/alert_config.h"
#include "alerts/alert_engine.h"
#include "alerts/alert_groups.h"
#include "alerts/channel_payloads.h"
#include "alerts/duration.h"
#include "alerts/prometheus_rules.h"
#include "alerts/sentry.h"
#include "common/ingest_stats.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

AlertConfig MustParse(const std::string& yaml) {
  auto cfg = ParseAlertConfig(yaml, "rules.yml");
  EXPECT_TRUE(cfg.ok()) << (cfg.ok() ? "" : cfg.error());
  return cfg.ok() ? *cfg : AlertConfig{};
}

constexpr char kChannels[] = R"(
channels:
  hook: {type: webhook, url_env: STALK_TEST_WEBHOOK_URL}
default_channels: [hook]
)";

void Heartbeat(SharedState& state, const char* host, double t) {
  Event ev;
  ev.kind = EventKind::kWorkerHeartbeat;
  ev.type = "worker-heartbeat";
  ev.hostname = host;
  ev.timestamp = t;
  ev.has_timestamp = true;
  ev.freq = 2.0;
  state.Write()->Apply(ev, t);
}

TEST(AlertDuration, Parses) {
  EXPECT_DOUBLE_EQ(*ParseRuleDuration("30s"), 30);
  EXPECT_DOUBLE_EQ(*ParseRuleDuration("5m"), 300);
  EXPECT_DOUBLE_EQ(*ParseRuleDuration("1h30m"), 5400);
  EXPECT_DOUBLE_EQ(*ParseRuleDuration("250ms"), 0.25);
  EXPECT_DOUBLE_EQ(*ParseRuleDuration("12"), 12);
  EXPECT_FALSE(ParseRuleDuration("").ok());
  EXPECT_FALSE(ParseRuleDuration("5x").ok());
  EXPECT_FALSE(ParseRuleDuration("1m30").ok());
  EXPECT_FALSE(ParseRuleDuration("-3s").ok());
  EXPECT_EQ(FormatRuleDuration(90), "1m30s");
  EXPECT_EQ(FormatRuleDuration(3600), "1h");
}

TEST(AlertConfig, ParsesRulesAndChannels) {
  auto cfg = MustParse(std::string(kChannels) + R"(
rules:
  - name: QueueBacklog
    kind: queue_length
    for: 1m
    severity: critical
    labels: {team: infra}
    annotations: {summary: "{{ $labels.queue }} has {{ $value }}"}
    params: {queue: celery, threshold: 100}
  - name: Dead
    kind: task_not_succeeded
    channels: []
    params: {task: app.nightly, max_age: 1d}
)");
  ASSERT_EQ(cfg.rules.size(), 2u);
  EXPECT_EQ(cfg.rules[0].kind, RuleKind::kQueueLength);
  EXPECT_DOUBLE_EQ(cfg.rules[0].for_seconds, 60);
  EXPECT_DOUBLE_EQ(cfg.rules[0].threshold, 100);
  EXPECT_EQ(cfg.rules[0].channels, std::vector<std::string>{"hook"});
  EXPECT_EQ(cfg.rules[0].labels.at("team"), "infra");
  EXPECT_TRUE(cfg.rules[1].channels.empty());
  EXPECT_DOUBLE_EQ(cfg.rules[1].max_age, 86400);
}

TEST(AlertConfig, ErrorsNameLineAndColumn) {
  auto bad_key = ParseAlertConfig("rules:\n  - name: X\n    kind: worker_offline\n    fro: 1m\n", "r.yml");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().find("r.yml:4:5: unknown key 'fro'"), std::string::npos) << bad_key.error();

  auto bad_kind = ParseAlertConfig("rules:\n  - name: X\n    kind: nope\n", "r.yml");
  ASSERT_FALSE(bad_kind.ok());
  EXPECT_NE(bad_kind.error().find("r.yml:3:11: unknown rule kind 'nope'"), std::string::npos) << bad_kind.error();

  auto bad_channel = ParseAlertConfig("rules:\n  - {name: X, kind: worker_offline, channels: [slack]}\n", "r.yml");
  ASSERT_FALSE(bad_channel.ok());
  EXPECT_NE(bad_channel.error().find("unknown channel 'slack'"), std::string::npos);

  auto secret_inline =
      ParseAlertConfig("channels:\n  s: {type: slack, url_env: 'https://hooks.slack.com/x'}\n", "r.yml");
  ASSERT_FALSE(secret_inline.ok());
  EXPECT_NE(secret_inline.error().find("must name an environment variable"), std::string::npos);
  EXPECT_EQ(secret_inline.error().find("hooks.slack.com"), std::string::npos) << "errors never echo values";

  auto bad_duration = ParseAlertConfig("rules:\n  - {name: X, kind: worker_offline, for: soon}\n", "r.yml");
  ASSERT_FALSE(bad_duration.ok());
  EXPECT_NE(bad_duration.error().find("r.yml:2:"), std::string::npos);

  auto syntax = ParseAlertConfig("rules: [\n", "r.yml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.error().rfind("r.yml:", 0), 0u);
}

struct Harness {
  SharedState state;
  IngestStats stats;
  std::vector<QueueLength> queues;
  std::vector<AlertNotice> notices;
  std::unique_ptr<AlertEngine> engine;

  explicit Harness(const std::string& rules, double start = 1000, StateOptions so = {}) : state(so) {
    AlertSources src{&state, &stats, [this] { return queues; }, [start] { return start; }};
    engine = std::make_unique<AlertEngine>(MustParse(std::string(kChannels) + rules), src,
                                           [this](AlertNotice n) { notices.push_back(std::move(n)); });
    state.Write()->AddListener(engine->listener());
  }
};

TEST(AlertEngine, WorkerOfflineFiresOnceThenResolves) {
  Harness h("rules:\n  - {name: WorkerOffline, kind: worker_offline, severity: critical, repeat_interval: 0s}\n");
  Heartbeat(h.state, "w1@host", 1000);
  h.engine->Evaluate(1001);
  EXPECT_TRUE(h.notices.empty());
  for (double t = 1005; t < 1020; t += 1)
    h.engine->Evaluate(t);  // 2 x freq = 4 s without heartbeat
  ASSERT_EQ(h.notices.size(), 1u);
  EXPECT_EQ(h.notices[0].status, "firing");
  EXPECT_EQ(h.notices[0].labels.at("worker"), "w1@host");
  EXPECT_EQ(h.notices[0].labels.at("alertname"), "WorkerOffline");
  EXPECT_EQ(h.notices[0].channels, std::vector<std::string>{"hook"});
  EXPECT_EQ(h.engine->firing(), 1u);
  Heartbeat(h.state, "w1@host", 1020);
  h.engine->Evaluate(1020.5);
  h.engine->Evaluate(1021);
  ASSERT_EQ(h.notices.size(), 2u);
  EXPECT_EQ(h.notices[1].status, "resolved");
  EXPECT_EQ(h.notices[1].fingerprint, h.notices[0].fingerprint);
  EXPECT_DOUBLE_EQ(h.notices[1].ends_at, 1020.5);
  EXPECT_EQ(h.engine->firing(), 0u);
}

TEST(AlertEngine, PurgedWorkerStaysFiring) {
  StateOptions so;
  so.purge_offline_workers = 1;
  Harness h("rules:\n  - {name: WorkerOffline, kind: worker_offline}\n", 1000, so);
  Heartbeat(h.state, "w1@host", 1000);
  h.engine->Evaluate(1001);
  h.state.Write()->Tick(1005);
  h.engine->Evaluate(1005.5);
  ASSERT_EQ(h.notices.size(), 1u);
  h.state.Write()->Tick(1007);
  h.state.Write()->Tick(1009);
  ASSERT_EQ(h.state.Read()->FindWorker("w1@host"), nullptr) << "purged";
  h.engine->Evaluate(1010);
  EXPECT_EQ(h.notices.size(), 1u) << "no false resolve";
  EXPECT_EQ(h.engine->firing(), 1u);
}

TEST(AlertEngine, WorkersOfflineBeforeStartDoNotFire) {
  Harness h("rules:\n  - {name: WorkerOffline, kind: worker_offline}\n");
  Heartbeat(h.state, "old@host", 100);  // restored from history, long dead
  h.engine->Evaluate(1000);
  h.engine->Evaluate(1001);
  EXPECT_TRUE(h.notices.empty());
}

TEST(AlertEngine, ForHoldsPendingAndRepeatIntervalRenotifies) {
  Harness h(
      "rules:\n  - {name: Backlog, kind: queue_length, for: 5s, repeat_interval: 1m, "
      "params: {queue: celery, threshold: 10}}\n");
  h.queues = {{"celery", 20}, {"other", 50}};
  h.engine->Evaluate(1000);
  h.engine->Evaluate(1004);
  EXPECT_TRUE(h.notices.empty());
  auto alerts = h.engine->Alerts(1004);
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].state, AlertState::kPending);
  h.engine->Evaluate(1005);
  ASSERT_EQ(h.notices.size(), 1u);
  EXPECT_EQ(h.notices[0].labels.at("queue"), "celery");
  EXPECT_DOUBLE_EQ(h.notices[0].value, 20);
  h.engine->Evaluate(1030);
  EXPECT_EQ(h.notices.size(), 1u);
  h.engine->Evaluate(1065);
  ASSERT_EQ(h.notices.size(), 2u);
  EXPECT_EQ(h.notices[1].status, "firing");
  h.queues = {{"celery", 3}};
  h.engine->Evaluate(1066);
  ASSERT_EQ(h.notices.size(), 3u);
  EXPECT_EQ(h.notices[2].status, "resolved");
}

TEST(AlertEngine, PendingThatClearsNeverNotifies) {
  Harness h("rules:\n  - {name: Backlog, kind: queue_length, for: 10s, params: {threshold: 10}}\n");
  h.queues = {{"celery", 20}};
  h.engine->Evaluate(1000);
  h.queues = {{"celery", 0}};
  h.engine->Evaluate(1005);
  EXPECT_TRUE(h.notices.empty());
  EXPECT_TRUE(h.engine->Alerts(1005).empty());
}

TEST(AlertEngine, SilenceMutesNotificationsNotLifecycle) {
  Harness h("rules:\n  - {name: Backlog, kind: queue_length, params: {threshold: 10}}\n");
  auto id = h.engine->AddSilence(R"({"matchers": {"alertname": "Backlog", "queue": "cel*"}, "duration": "1h"})", 1000);
  ASSERT_TRUE(id.ok()) << id.error();
  h.queues = {{"celery", 20}, {"mail", 30}};
  h.engine->Evaluate(1000);
  ASSERT_EQ(h.notices.size(), 1u);  // only "mail" is not silenced
  EXPECT_EQ(h.notices[0].labels.at("queue"), "mail");
  auto alerts = h.engine->Alerts(1000);
  ASSERT_EQ(alerts.size(), 2u);
  int silenced = 0;
  for (const auto& a : alerts)
    silenced += a.silenced_by == *id;
  EXPECT_EQ(silenced, 1);
  h.queues = {};
  h.engine->Evaluate(1001);
  ASSERT_EQ(h.notices.size(), 2u);  // the silenced one was never notified: no resolve either
  EXPECT_EQ(h.notices[1].labels.at("queue"), "mail");
  EXPECT_TRUE(h.engine->RemoveSilence(*id));
  EXPECT_FALSE(h.engine->RemoveSilence(*id));
  EXPECT_FALSE(h.engine->AddSilence(R"({"matchers": {}, "duration": "1h"})", 1000).ok());
  EXPECT_FALSE(h.engine->AddSilence(R"({"matchers": {"a": "b"}})", 1000).ok());
}

TEST(AlertEngine, TaskFailureCountRateAndRuntime) {
  Harness h(R"(rules:
  - {name: Fails, kind: task_failure_count, params: {task: app.fail, window: 1m, threshold: 2}}
  - {name: Rate, kind: task_failure_rate, params: {window: 1m, threshold: 0.5, min_count: 4}}
  - {name: Slow, kind: task_runtime, params: {sla: 2s, percentile: 50, window: 1m}}
)");
  Event ev;
  ev.kind = EventKind::kTaskReceived;
  ev.type = "task-received";
  ev.uuid = "8b4f7c1e-2a3d-4c5e-9f60-7a8b9c0d1e2f";
  ev.name = OptStr{"app.fail", true, false};
  ev.hostname = "w1";
  ev.timestamp = 1000;
  ev.has_timestamp = true;
  h.state.Write()->Apply(ev, 1000);
  const uint32_t name = h.state.Read()->FindString("app.fail");
  for (int i = 0; i < 3; ++i)
    h.engine->listener()->Push(TaskOutcome{name, true, 3.0, 1000.0 + i});
  h.engine->listener()->Push(TaskOutcome{name, false, 2.5, 1003});
  h.engine->Evaluate(1004);
  std::set<std::string> fired;
  for (const auto& n : h.notices)
    fired.insert(n.rule + ":" + n.labels.at("task"));
  EXPECT_EQ(fired, (std::set<std::string>{"Fails:app.fail", "Rate:app.fail", "Slow:app.fail"}));
  // A minute later the window is empty: everything resolves.
  h.engine->Evaluate(1070);
  size_t resolved = 0;
  for (const auto& n : h.notices)
    resolved += n.status == "resolved";
  EXPECT_EQ(resolved, 3u);
}

TEST(AlertEngine, QueueWaitFromTaskStarted) {
  Harness h("rules:\n  - {name: Wait, kind: queue_wait, params: {threshold: 5, window: 1m}}\n");
  auto apply = [&](EventKind kind, const char* type, double t) {
    Event ev;
    ev.kind = kind;
    ev.type = type;
    ev.uuid = "8b4f7c1e-2a3d-4c5e-9f60-7a8b9c0d1e2f";
    ev.name = OptStr{"app.slow", true, false};
    ev.hostname = "w1";
    ev.timestamp = t;
    ev.has_timestamp = true;
    h.state.Write()->Apply(ev, t);
  };
  apply(EventKind::kTaskReceived, "task-received", 1000);
  apply(EventKind::kTaskStarted, "task-started", 1008);
  h.engine->Evaluate(1009);
  ASSERT_EQ(h.notices.size(), 1u);
  EXPECT_EQ(h.notices[0].labels.at("task"), "app.slow");
  EXPECT_DOUBLE_EQ(h.notices[0].value, 8);
}

TEST(AlertEngine, NoConsumerJudgesLivenessFromState) {
  SharedState state{StateOptions{}};
  std::vector<AlertNotice> notices;
  std::map<std::string, std::set<std::string>> consumers = {{"celery", {"w1"}}, {"mail", {"gone"}}};
  AlertSources src{&state, nullptr,
                   [] {
                     return std::vector<QueueLength>{{"celery", 0}, {"mail", 0}, {"idle", 0}};
                   },
                   [] { return 1000.0; }, [&] { return consumers; }};
  AlertEngine engine(MustParse(std::string(kChannels) + "rules:\n  - {name: NoConsumer, kind: no_consumer}\n"), src,
                     [&](AlertNotice n) { notices.push_back(std::move(n)); });
  Heartbeat(state, "w1", 1000);
  engine.Evaluate(1000.5);
  std::set<std::string> queues;
  for (const auto& n : notices)
    queues.insert(n.labels.at("queue"));
  EXPECT_EQ(queues, (std::set<std::string>{"mail", "idle"}));  // "gone" never heartbeated; idle has nobody
}

TEST(AlertEngine, DeadManAndBroker) {
  Harness h(R"(rules:
  - {name: Nightly, kind: task_not_succeeded, params: {task: app.nightly, max_age: 1m}}
  - {name: Broker, kind: broker_unreachable, for: 10s}
)");
  h.stats.broker_connected = true;
  h.engine->Evaluate(1030);
  EXPECT_TRUE(h.notices.empty());
  h.engine->Evaluate(1061);
  ASSERT_EQ(h.notices.size(), 1u);
  EXPECT_EQ(h.notices[0].rule, "Nightly");
  h.stats.broker_connected = false;
  h.stats.last_disconnected_at = 1062;
  h.engine->Evaluate(1062);
  h.engine->Evaluate(1072);
  ASSERT_EQ(h.notices.size(), 2u);
  EXPECT_EQ(h.notices[1].rule, "Broker");
}

TEST(AlertEngine, StoreErrors) {
  std::optional<std::string> problem;
  std::vector<AlertNotice> notices;
  AlertSources src{nullptr, nullptr, nullptr, [] { return 1000.0; }, nullptr, [&] { return problem; }};
  AlertEngine engine(MustParse(std::string(kChannels) + "rules:\n  - {name: Store, kind: store_errors}\n"), src,
                     [&](AlertNotice n) { notices.push_back(std::move(n)); });
  engine.Evaluate(1000);
  EXPECT_TRUE(notices.empty());
  problem = "writes failing: disk full";
  engine.Evaluate(1001);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].summary.find("disk full"), std::string::npos);
  problem.reset();
  engine.Evaluate(1002);
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[1].status, "resolved");
}

TEST(TaskWindows, ExactCountsBoundedSamples) {
  TaskWindows w(60);
  for (int i = 0; i < 10000; ++i)
    w.Add("t", TaskOutcome{0, i % 10 == 0, 0.5, 1000.0 + i / 5000.0});
  auto s = w.Window("t", 1002, 60);
  EXPECT_EQ(s.failures, 1000u);
  EXPECT_EQ(s.successes, 9000u);
  EXPECT_EQ(s.runtimes.size(), 2 * TaskWindows::kSamplesPerSecond);  // two seconds of samples
  EXPECT_DOUBLE_EQ(w.LastSuccess("t"), 1000.0 + 9999 / 5000.0);
  w.Prune(1100);
  EXPECT_EQ(w.Window("t", 1100, 60).successes, 0u);
}

TEST(AlertEngine, FingerprintIsStable) {
  EXPECT_EQ(AlertEngine::Fingerprint("A", {{"x", "1"}}), AlertEngine::Fingerprint("A", {{"x", "1"}}));
  EXPECT_NE(AlertEngine::Fingerprint("A", {{"x", "1"}}), AlertEngine::Fingerprint("A", {{"x", "2"}}));
  EXPECT_NE(AlertEngine::Fingerprint("A", {{"x", "1"}}), AlertEngine::Fingerprint("B", {{"x", "1"}}));
  EXPECT_EQ(AlertEngine::Fingerprint("A", {}).size(), 16u);
}

TEST(AlertPayloads, PagerDutyAlertmanagerAndHmac) {
  AlertNotice n;
  n.rule = "WorkerOffline";
  n.fingerprint = "00ff";
  n.status = "firing";
  n.severity = "critical";
  n.summary = "Worker w1 is offline";
  n.labels = {{"alertname", "WorkerOffline"}, {"worker", "w1"}};
  n.starts_at = 1764882000.5;
  auto pd = nlohmann::json::parse(PagerDutyPayload(n, "rk"));
  EXPECT_EQ(pd["event_action"], "trigger");
  EXPECT_EQ(pd["dedup_key"], "00ff");
  EXPECT_EQ(pd["routing_key"], "rk");
  EXPECT_EQ(pd["payload"]["source"], "w1");
  EXPECT_EQ(pd["payload"]["severity"], "critical");
  n.status = "resolved";
  n.ends_at = 1764882060;
  pd = nlohmann::json::parse(PagerDutyPayload(n, "rk"));
  EXPECT_EQ(pd["event_action"], "resolve");
  EXPECT_FALSE(pd.contains("payload"));
  auto am = nlohmann::json::parse(AlertmanagerPayload(n, ""));
  ASSERT_TRUE(am.is_array());
  EXPECT_EQ(am[0]["labels"]["worker"], "w1");
  EXPECT_EQ(am[0]["startsAt"], "2025-12-04T21:00:00.500Z");
  EXPECT_EQ(am[0]["endsAt"], "2025-12-04T21:01:00.000Z");
  // RFC 4231 test case 2.
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Sentry, ParsesDsnExceptionAndTraceback) {
  auto dsn = ParseSentryDsn("https://abc123@o1.ingest.sentry.io/42");
  ASSERT_TRUE(dsn.ok());
  EXPECT_EQ(dsn->envelope_url, "https://o1.ingest.sentry.io/api/42/envelope/");
  EXPECT_EQ(dsn->public_key, "abc123");
  auto prefixed = ParseSentryDsn("http://k:legacy@127.0.0.1:9000/sentry/7");
  ASSERT_TRUE(prefixed.ok());
  EXPECT_EQ(prefixed->envelope_url, "http://127.0.0.1:9000/sentry/api/7/envelope/");
  EXPECT_EQ(prefixed->public_key, "k");
  EXPECT_FALSE(ParseSentryDsn("not a dsn").ok());

  auto e = ParseExceptionRepr("ValueError('boom it\\'s')", "");
  EXPECT_EQ(e.type, "ValueError");
  EXPECT_EQ(e.value, "boom it's");
  EXPECT_EQ(ParseExceptionRepr("KeyError(1)", "").value, "1");
  const std::string tb =
      "Traceback (most recent call last):\n"
      "  File \"/usr/lib/python3/dist-packages/celery/app/trace.py\", line 451, in trace_task\n"
      "    R = retval = fun(*args, **kwargs)\n"
      "  File \"/srv/app.py\", line 58, in fail\n"
      "    raise ValueError(msg)\n"
      "    ^^^^^^^^^^^^^^^^^^^^^\n"
      "app.errors.PaymentError: card declined\n";
  auto fallback = ParseExceptionRepr("<unprintable>", tb);
  EXPECT_EQ(fallback.type, "app.errors.PaymentError");
  EXPECT_EQ(fallback.value, "card declined");
  auto frames = ParsePythonTraceback(tb);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].filename, "/srv/app.py");
  EXPECT_EQ(frames[1].lineno, 58);
  EXPECT_EQ(frames[1].function, "fail");
  EXPECT_EQ(frames[1].context_line, "raise ValueError(msg)");

  FailedTask t{"id-1", "app.fail", "w1@host", "(1,)", "{}", "ValueError('boom')", tb, "celery", 0, 1764882000};
  const std::string env = SentryEnvelope(t, *dsn, "staging", "0123456789abcdef0123456789abcdef", 1764882001);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < env.size()) {
    const size_t nl = env.find('\n', pos);
    lines.push_back(env.substr(pos, nl - pos));
    pos = nl + 1;
  }
  ASSERT_EQ(lines.size(), 3u);
  auto item = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(item["type"], "event");
  EXPECT_EQ(item["length"], lines[2].size());
  auto ev = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(ev["server_name"], "w1@host");
  EXPECT_EQ(ev["environment"], "staging");
  EXPECT_EQ(ev["exception"]["values"][0]["type"], "ValueError");
  EXPECT_EQ(ev["exception"]["values"][0]["value"], "boom");
  EXPECT_EQ(ev["exception"]["values"][0]["stacktrace"]["frames"].size(), 2u);
  EXPECT_EQ(ev["exception"]["values"][0]["stacktrace"]["frames"][0]["in_app"], false);
  EXPECT_EQ(ev["contexts"]["celery_task"]["name"], "app.fail");
  EXPECT_EQ(ev["contexts"]["celery_task"]["args"], "(1,)");
  EXPECT_EQ(SentryAuthHeader(*dsn).find("sentry_key=abc123") != std::string::npos, true);
}

TEST(PrometheusRules, ExportsPromQl) {
  auto cfg = MustParse(std::string(kChannels) + R"(
rules:
  - {name: Offline, kind: worker_offline, for: 1m, params: {worker: "w1@*"}}
  - {name: Backlog, kind: queue_length, params: {queue: celery, threshold: 100}}
  - {name: Rate, kind: task_failure_rate, params: {task: app.x, window: 5m, threshold: 0.1}}
)");
  EXPECT_EQ(PromQlFor(cfg.rules[0]), "celery_worker_up{hostname=~\"w1@.*\"} == 0");
  EXPECT_EQ(PromQlFor(cfg.rules[1]), "celery_queue_length{queue_name=\"celery\"} > 100");
  RuleConfig nc;
  nc.kind = RuleKind::kNoConsumer;
  nc.queue = "celery";
  EXPECT_EQ(PromQlFor(nc), "celery_active_worker_count{queue_name=\"celery\"} == 0");
  const std::string yaml = PrometheusRulesYaml(cfg);
  EXPECT_NE(yaml.find("alert: Offline"), std::string::npos);
  EXPECT_NE(yaml.find("for: 1m"), std::string::npos);
  const YAML::Node back = YAML::Load(yaml);
  EXPECT_EQ(back["groups"][0]["rules"][2]["expr"].as<std::string>(), PromQlFor(cfg.rules[2]));
  EXPECT_NE(PromQlFor(cfg.rules[2]).find("increase(celery_task_failed_total{name=\"app.x\"}[5m])"), std::string::npos);
}

// ------------------------------------------------------------------ grouping, result backend, silences

AlertNotice Notice(const std::string& worker, const std::string& status, double at, double wait = 5,
                   double interval = 10) {
  AlertNotice n;
  n.rule = "WorkerOffline";
  n.severity = "critical";
  n.status = status;
  n.labels = {{"alertname", "WorkerOffline"}, {"severity", "critical"}, {"worker", worker}};
  n.fingerprint = AlertEngine::Fingerprint(n.rule, n.labels);
  n.summary = "Worker " + worker + " is offline";
  n.channels = {"slack", "hook"};
  n.group_wait = wait;
  n.group_interval = interval;
  n.at = at;
  return n;
}

TEST(AlertGroups, AlertsFiringTogetherGoOutAsOneNotificationPerChannel) {
  AlertGroups groups;
  std::vector<AlertGroupNotice> out;
  auto deliver = [&](AlertGroupNotice g) { out.push_back(std::move(g)); };
  groups.Add(Notice("w1@h", "firing", 100), 100);
  groups.FlushDue(102, deliver);
  EXPECT_TRUE(out.empty()) << "group_wait gathers";
  groups.Add(Notice("w2@h", "firing", 103), 103);
  groups.FlushDue(105, deliver);
  ASSERT_EQ(out.size(), 2u);  // one per channel
  EXPECT_EQ(out[0].channel, "hook");
  EXPECT_EQ(out[0].status, "firing");
  ASSERT_EQ(out[0].alerts.size(), 2u);
  EXPECT_EQ(out[0].group_labels, (std::map<std::string, std::string>{{"alertname", "WorkerOffline"}}));
  const std::string slack = SlackPayload(out[1]);
  EXPECT_NE(slack.find("[FIRING:2] WorkerOffline"), std::string::npos) << slack;
  EXPECT_NE(slack.find("w1@h"), std::string::npos);
  EXPECT_NE(slack.find("w2@h"), std::string::npos);
  const auto hook = nlohmann::json::parse(WebhookPayload(out[0]));
  EXPECT_EQ(hook["alerts"].size(), 2u);
  EXPECT_EQ(hook["groupLabels"]["alertname"], "WorkerOffline");
  EXPECT_EQ(nlohmann::json::parse(AlertmanagerPayload(out[0], "")).size(), 2u);
  const std::string mail = EmailMessage(out[0], "a@x", {"b@x"}, 105);
  EXPECT_NE(mail.find("Subject: [FIRING:2] WorkerOffline: Worker w1@h is offline; Worker w2@h is offline"),
            std::string::npos)
      << mail;

  // A resolve waits for group_interval after the last notification, and lists the still-firing one.
  out.clear();
  groups.Add(Notice("w1@h", "resolved", 106), 106);
  groups.FlushDue(110, deliver);
  EXPECT_TRUE(out.empty());
  groups.FlushDue(115, deliver);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].status, "firing");
  ASSERT_EQ(out[0].alerts.size(), 2u);
  EXPECT_EQ(out[0].alerts[0].status, "firing");
  EXPECT_EQ(out[0].alerts[1].status, "resolved");
  out.clear();
  groups.Add(Notice("w2@h", "resolved", 130), 130);
  groups.FlushDue(130, deliver);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].status, "resolved");
  ASSERT_EQ(out[0].alerts.size(), 1u);
  EXPECT_EQ(groups.groups(), 0u) << "an empty group is forgotten";
}

TEST(AlertGroups, SendResolvedFalseLetsTheAlertGoSilently) {
  AlertGroups groups;
  std::vector<AlertGroupNotice> out;
  auto deliver = [&](AlertGroupNotice g) { out.push_back(std::move(g)); };
  AlertNotice n = Notice("w1@h", "firing", 100, 0, 0);
  n.channels = {"hook"};
  groups.Add(n, 100);
  groups.FlushDue(100, deliver);
  ASSERT_EQ(out.size(), 1u);
  n.status = "resolved";
  n.send_resolved = false;
  groups.Add(n, 101);
  groups.FlushDue(101, deliver);
  EXPECT_EQ(out.size(), 1u);
  EXPECT_EQ(groups.groups(), 0u);
}

TEST(AlertConfig, GroupingDefaultsAndOverrides) {
  auto cfg = MustParse(std::string(kChannels) +
                       "group_wait: 10s\ngroup_by: [alertname, queue]\nrules:\n"
                       "  - {name: A, kind: worker_offline}\n"
                       "  - {name: B, kind: queue_length, group_by: [queue], group_interval: 1m}\n"
                       "  - {name: C, kind: result_backend_errors}\n");
  ASSERT_EQ(cfg.rules.size(), 3u);
  EXPECT_EQ(cfg.rules[0].group_by, (std::vector<std::string>{"alertname", "queue"}));
  EXPECT_DOUBLE_EQ(cfg.rules[0].group_wait, 10);
  EXPECT_EQ(cfg.rules[1].group_by, std::vector<std::string>{"queue"});
  EXPECT_DOUBLE_EQ(cfg.rules[1].group_interval, 60);
  EXPECT_EQ(cfg.rules[2].kind, RuleKind::kResultBackendErrors);
  EXPECT_NE(PrometheusRulesYaml(cfg).find("stalk_result_backend_up == 0"), std::string::npos);
}

TEST(AlertEngine, ResultBackendErrors) {
  std::optional<std::string> problem;
  std::vector<AlertNotice> notices;
  AlertSources src{nullptr, nullptr, nullptr, [] { return 1000.0; }, nullptr, nullptr, [&] { return problem; }};
  AlertEngine engine(MustParse(std::string(kChannels) + "rules:\n  - {name: RB, kind: result_backend_errors}\n"), src,
                     [&](AlertNotice n) { notices.push_back(std::move(n)); });
  engine.Evaluate(1000);
  EXPECT_TRUE(notices.empty());
  problem = "redis://127.0.0.1:1/0: connection refused";
  engine.Evaluate(1001);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].summary.find("connection refused"), std::string::npos);
  problem.reset();
  engine.Evaluate(1002);
  ASSERT_EQ(notices.size(), 2u);
  EXPECT_EQ(notices[1].status, "resolved");
}

TEST(AlertEngine, SilencesArePersistedRestoredAndExpired) {
  std::vector<std::string> saved, removed;
  std::vector<Silence> kept;
  {
    Harness h("rules:\n  - {name: Backlog, kind: queue_length, params: {threshold: 10}}\n");
    h.engine->SetSilencePersistence(SilencePersistence{[&](const Silence& s) {
                                                         saved.push_back(s.id);
                                                         kept.push_back(s);
                                                       },
                                                       [&](const std::string& id) { removed.push_back(id); }});
    auto id = h.engine->AddSilence(R"({"matchers": {"alertname": "Backlog"}, "duration": "1h"})", 1000);
    ASSERT_TRUE(id.ok());
    ASSERT_EQ(saved, std::vector<std::string>{*id});
    EXPECT_EQ(MatchersJson(kept[0]), R"({"alertname":"Backlog"})");
  }
  // A new engine (the restart) restores it: same id, still mutes.
  Harness h("rules:\n  - {name: Backlog, kind: queue_length, params: {threshold: 10}}\n");
  h.engine->SetSilencePersistence(
      SilencePersistence{[](const Silence&) {}, [&](const std::string& id) { removed.push_back(id); }});
  auto matchers = ParseMatchersJson(MatchersJson(kept[0]));
  ASSERT_TRUE(matchers.ok());
  h.engine->RestoreSilences({Silence{kept[0].id, *matchers, kept[0].starts_at, kept[0].ends_at, "", ""}});
  h.queues = {{"celery", 20}};
  h.engine->Evaluate(1100);
  EXPECT_TRUE(h.notices.empty());
  EXPECT_EQ(h.engine->Alerts(1100)[0].silenced_by, kept[0].id);
  // Expired (an hour past its end): dropped from memory and from the store.
  h.engine->Evaluate(1000 + 3600 + 3601);
  EXPECT_EQ(removed, std::vector<std::string>{kept[0].id});
  EXPECT_FALSE(ParseMatchersJson("[1]").ok());
}

}  // namespace
}  // namespace stalk
