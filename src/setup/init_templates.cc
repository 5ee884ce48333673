// Stalk — Celery monitoring server.
// InitTemplates (see init_templates.h): the written files as raw-string templates with {{name}}
// slots, filled from the project and the profile. The profile decides bind address, auth, TLS and
// alerting; everything else is the same for every profile so that moving from staging to production
// is a small diff.
#include "setup/init_templates.h"

#include <map>

namespace stalk {
namespace {

std::string Fill(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [key, value] : vars) {
    const std::string slot = "{{" + key + "}}";
    for (size_t pos = text.find(slot); pos != std::string::npos; pos = text.find(slot, pos + value.size())) {
      text.replace(pos, slot.size(), value);
    }
  }
  return text;
}

std::string BrokerPlaceholder(BrokerKind kind, InitProfile p) {
  const std::string env = InitProfileShort(p);
  const bool dev = p == InitProfile::kDevelopment;
  switch (kind) {
    case BrokerKind::kAmqp:
      return dev ? "amqp://stalk:rabbitmq_dev_your_password_here@127.0.0.1:5672//"
                 : "amqps://stalk:rabbitmq_" + env + "_your_password_here@rabbitmq.example.internal:5671//";
    case BrokerKind::kSqs:
      return "sqs://aws_" + env + "_your_access_key_here:aws_" + env + "_your_secret_key_here@";
    case BrokerKind::kRedis:
    case BrokerKind::kUnknown:
    case BrokerKind::kOther:
      break;
  }
  return dev ? "redis://127.0.0.1:6379/0"
             : "redis://:redis_" + env + "_your_password_here@redis.example.internal:6379/0";
}

std::map<std::string, std::string> Vars(const ProjectInfo& info, InitProfile p) {
  const bool dev = p == InitProfile::kDevelopment;
  const bool prod = p == InitProfile::kProduction;
  return {
      {"project", info.name},
      {"profile", InitProfileName(p)},
      {"env", InitProfileShort(p)},
      {"broker_kind", BrokerKindName(info.broker)},
      {"broker_url", BrokerPlaceholder(info.broker, p)},
      {"address", dev ? "127.0.0.1" : "0.0.0.0"},
      {"host", dev ? "127.0.0.1" : "<this host>"},
      // A broker on the same host starts first (After= on a unit that does not exist is ignored).
      {"broker_unit", info.broker == BrokerKind::kAmqp  ? " rabbitmq-server.service"
                      : info.broker == BrokerKind::kSqs ? ""
                                                        : " redis-server.service"},
      {"scheme", prod ? "https" : "http"},
      {"app", info.app_module.empty() ? "proj" : info.app_module},
  };
}

// ---------------------------------------------------------------------------------------------
// .env.example
// ---------------------------------------------------------------------------------------------

constexpr const char* kEnvCommon = R"~(# .env.example: the settings Stalk reads for {{project}} (profile: {{profile}}).
# Written by `stalk init`. Copy it to .env (git-ignored), replace every placeholder, and never
# commit .env. Stalk reads STALK_<OPTION> for every `stalk serve` option (`stalk serve --help`).

# Broker: Celery's own variable, read by Stalk too (detected broker: {{broker_kind}}).
CELERY_BROKER_URL={{broker_url}}
# Result backend for task results in the API; empty: the broker.
STALK_RESULT_BACKEND=

# Where Stalk listens.
STALK_ADDRESS={{address}}
STALK_PORT=5555

# Durable task history: a SQLite file (or a postgresql:// URL) and how long to keep tasks.
STALK_DB=stalk.db
STALK_RETENTION=7d
STALK_LOGGING=info
)~";

constexpr const char* kEnvStaging = R"~(
# Basic auth for people: user:password pairs, comma-separated.
STALK_BASIC_AUTH=admin:stalk_{{env}}_your_password_here
# API tokens, one `sha256:role:label` line each, from `stalk token create --role viewer --label prometheus`.
# Prometheus scrapes /metrics with that token (monitoring/prometheus.yml).
STALK_API_TOKENS_FILE=/etc/stalk/api_tokens
)~";

constexpr const char* kEnvProduction = R"~(
# People log in with bcrypt-hashed users (`stalk hash-password`), one user:hash[:role] line each.
STALK_BASIC_AUTH_FILE=/etc/stalk/users
# API tokens, one `sha256:role:label` line each, from `stalk token create --role viewer --label prometheus`.
STALK_API_TOKENS_FILE=/etc/stalk/api_tokens

# TLS (Flower's option names).
STALK_CERTFILE=/etc/stalk/tls/fullchain.pem
STALK_KEYFILE=/etc/stalk/tls/privkey.pem

# OpenID Connect login (Flower's option names; the issuer is your provider's).
STALK_AUTH_PROVIDER=oidc
STALK_OIDC_ISSUER=https://sso.example.com/realms/ops
STALK_AUTH=.*@example\.com
STALK_OIDC_ROLE=operator
STALK_OAUTH2_KEY=oidc_{{env}}_your_client_id_here
STALK_OAUTH2_SECRET=oidc_{{env}}_your_client_secret_here
STALK_OAUTH2_REDIRECT_URI=https://stalk.example.com/login
# Signs login session cookies (32+ characters).
STALK_COOKIE_SECRET=stalk_{{env}}_your_cookie_secret_here_32_chars_min

# Alerting: where Prometheus sends the alerts of monitoring/stalk_rules.yml.
ALERTMANAGER_URL=http://127.0.0.1:9093
)~";

// ---------------------------------------------------------------------------------------------
// scripts and units
// ---------------------------------------------------------------------------------------------

constexpr const char* kGitignore = R"~(.env
.env.*
!.env.example
stalk.db*
)~";

constexpr const char* kStartScript = R"~(#!/usr/bin/env bash
# start_stalk.sh: starts Stalk for {{project}} (profile: {{profile}}). Written by `stalk init`.
# Settings come from .env (see .env.example); extra arguments go to `stalk serve`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f .env ]; then
  echo "start_stalk.sh: no .env here; copy .env.example to .env and fill it in" >&2
  exit 1
fi
set -a
# shellcheck disable=SC1091
. ./.env
set +a
exec "${STALK_BIN:-stalk}" serve "$@"
)~";

constexpr const char* kDockerfile =
    R"~(# Dockerfile.stalk: Stalk for {{project}} (profile: {{profile}}). Written by `stalk init`.
# Build the stalk binary first (cmake --build build --target stalk), then:
#   docker build -f Dockerfile.stalk --build-arg STALK_BINARY=build/src/cli/stalk -t {{project}}-stalk .
#   docker run --env-file .env -p 5555:5555 -v stalk-data:/data {{project}}-stalk
# Secrets come from --env-file at run time; none are baked into the image.
# The runtime libraries of a Debian 12 build (curl, yaml-cpp, rabbitmq-c: alerting and AMQP builds).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libhiredis0.14 libsqlite3-0 libpq5 \
      libspdlog1.10 libfmt9 libsimdjson14 libabsl20220623 libssl3 libcrypt1 libcurl4 libyaml-cpp0.7 librabbitmq4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /data --create-home stalk
ARG STALK_BINARY=stalk
COPY ${STALK_BINARY} /usr/local/bin/stalk
USER stalk
WORKDIR /data
ENV STALK_ADDRESS=0.0.0.0 \
    STALK_PORT=5555 \
    STALK_DB=/data/stalk.db
EXPOSE 5555
# Healthy while the port accepts connections (the image has no curl; /healthcheck needs auth off).
HEALTHCHECK --interval=30s --timeout=5s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/5555"]
ENTRYPOINT ["/usr/local/bin/stalk", "serve"]
)~";

constexpr const char* kSystemdUnit =
    R"~(# stalk.service: Stalk for {{project}} (profile: {{profile}}). Written by `stalk init`.
# Install: copy the project to /srv/{{project}}, the binary to /usr/local/bin/stalk, then
#   sudo useradd --system --no-create-home stalk && sudo chown -R stalk: /srv/{{project}}
#   sudo cp stalk.service /etc/systemd/system/stalk-{{project}}.service
#   sudo systemctl daemon-reload && sudo systemctl enable --now stalk-{{project}}
[Unit]
Description=Stalk: Celery monitoring for {{project}}
Wants=network-online.target
After=network-online.target{{broker_unit}}

[Service]
Type=simple
User=stalk
Group=stalk
WorkingDirectory=/srv/{{project}}
# Secrets live in .env (mode 0600), never in this unit.
EnvironmentFile=/srv/{{project}}/.env
ExecStart=/usr/local/bin/stalk serve
Restart=on-failure
RestartSec=2
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths=/srv/{{project}}
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
)~";

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

constexpr const char* kPrometheusHead =
    R"~(# monitoring/prometheus.yml: scrapes Stalk for {{project}} (profile: {{profile}}).
# Written by `stalk init`. Check it with `promtool check config monitoring/prometheus.yml`.
global:
  scrape_interval: 15s
  evaluation_interval: 15s

rule_files:
  - stalk_rules.yml
)~";

constexpr const char* kPrometheusAlerting = R"~(
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:9093"]
)~";

constexpr const char* kPrometheusScrape = R"~(
scrape_configs:
  - job_name: stalk
    scheme: {{scheme}}
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:5555"]
        labels:
          project: {{project}}
)~";

constexpr const char* kPrometheusToken =
    R"~(    # A viewer token from `stalk token create --role viewer --label prometheus`, in a file only
    # Prometheus can read.
    authorization:
      type: Bearer
      credentials_file: /etc/prometheus/stalk_token
)~";

constexpr const char* kPrometheusTls = R"~(    tls_config:
      server_name: stalk.example.com
)~";

constexpr const char* kRules = R"~(# monitoring/stalk_rules.yml: alert rules over Stalk's metrics for {{project}}.
# Written by `stalk init`. Check them with `promtool check rules monitoring/stalk_rules.yml`.
groups:
  - name: stalk
    rules:
      - alert: StalkDown
        expr: up{job="stalk"} == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: "Stalk is not answering Prometheus scrapes"
          description: "{{ $labels.instance }} has been down for 2 minutes: no Celery monitoring."
      - alert: StalkBrokerDisconnected
        expr: stalk_broker_connected == 0
        for: 1m
        labels:
          severity: critical
        annotations:
          summary: "Stalk lost its broker connection"
          description: "Stalk on {{ $labels.instance }} has not been connected to the broker for 1 minute."
      - alert: StalkNoEvents
        expr: sum by (instance) (rate(stalk_events_ingested_total[10m])) == 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "No Celery events reach Stalk"
          description: "Workers send a heartbeat every 2 s: none arrived for 10 minutes. Run `stalk doctor`."
      - alert: StalkIngestDropping
        expr: increase(stalk_ingest_dropped_total[10m]) > 0
        labels:
          severity: warning
        annotations:
          summary: "Stalk drops events: its ingest queue is full"
          description: "{{ $value }} messages dropped in 10 minutes; raise --ingest_queue_mb or give Stalk more CPU."
      - alert: StalkIngestLagging
        expr: stalk_ingest_lag_seconds > 5
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "Stalk is behind the event stream"
          description: "Events wait {{ $value }} s before they are applied."
      - alert: StalkEventsRejected
        expr: sum by (instance, reason) (increase(stalk_events_rejected_total[15m])) > 10
        labels:
          severity: info
        annotations:
          summary: "Stalk rejects broker messages ({{ $labels.reason }})"
          description: "{{ $value }} messages rejected in 15 minutes."
  - name: celery
    rules:
      - alert: CeleryNoWorkerOnline
        expr: sum by (instance) (flower_worker_online) == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: "No Celery worker is online"
          description: "No worker heartbeat reached Stalk for 2 minutes."
      - alert: CeleryWorkerOffline
        expr: flower_worker_online == 0
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "Celery worker {{ $labels.worker }} is offline"
          description: "Its heartbeats stopped 5 minutes ago."
      - alert: CeleryTaskFailureRate
        expr: |
          sum by (instance, task) (rate(flower_events_total{type="task-failed"}[10m]))
            / sum by (instance, task) (rate(flower_events_total{type=~"task-succeeded|task-failed"}[10m])) > 0.1
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "Task {{ $labels.task }} fails more than 10% of the time"
          description: "Failure ratio over 10 minutes: {{ $value }}."
      - alert: CeleryQueueBacklog
        expr: celery_queue_length > 100
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "Queue {{ $labels.queue_name }} holds {{ $value }} messages"
          description: "The backlog has stayed above 100 for 10 minutes: add workers or look for a stuck one."
      - alert: CeleryTasksLost
        expr: increase(stalk_tasks_lost_total[15m]) > 0
        labels:
          severity: warning
        annotations:
          summary: "Tasks were lost with a worker"
          description: "{{ $value }} tasks were running on workers that went away in the last 15 minutes."
)~";

// ---------------------------------------------------------------------------------------------
// MONITORING.md
// ---------------------------------------------------------------------------------------------

constexpr const char* kMonitoringMd = R"~(## Monitoring (Stalk)

Celery for {{project}} is monitored by Stalk (profile: {{profile}}).
This section was written by `stalk init`; paste it into the project's README if you like.

**Start it**

    cp .env.example .env      # then replace every placeholder; .env is git-ignored
    ./start_stalk.sh          # or: systemd (stalk.service), or Docker (Dockerfile.stalk)

The dashboard and API are on {{scheme}}://{{host}}:5555/, Prometheus metrics on /metrics.

**Celery must send events.** Workers need task events on (`worker_send_task_events = True`, or
`celery -A {{app}} worker -E`), and `task_send_sent_event = True` shows queued tasks. Check the whole
chain with:

    set -a; . ./.env; set +a
    stalk doctor --stalk-url {{scheme}}://127.0.0.1:5555     # add --fix to switch task events on

**Prometheus and Grafana**

- `monitoring/prometheus.yml`: a scrape job for Stalk (check: `promtool check config monitoring/prometheus.yml`).
- `monitoring/stalk_rules.yml`: alerts for Stalk down, broker lost, no events, workers offline,
  failure rate, queue backlog, lost tasks (check: `promtool check rules monitoring/stalk_rules.yml`).
- `monitoring/grafana_dashboard.json`: import it in Grafana (Dashboards → Import) and pick the
  Prometheus data source.

**Secrets** live in `.env` only (read by `start_stalk.sh`, `EnvironmentFile=` in the unit, or
`docker run --env-file .env`). Rotate any that were ever committed.
)~";

constexpr const char* kMonitoringStaging = R"~(
**Access** (staging): people log in with `STALK_BASIC_AUTH`; Prometheus scrapes with a viewer token
(`stalk token create --role viewer --label prometheus`, its hash in `STALK_API_TOKENS_FILE`, the token
itself in `/etc/prometheus/stalk_token`).
)~";

constexpr const char* kMonitoringProduction = R"~(
**Access** (production): TLS with `STALK_CERTFILE`/`STALK_KEYFILE`, people log in with OpenID Connect
(`STALK_AUTH`, `STALK_OAUTH2_*`) or bcrypt users (`STALK_BASIC_AUTH_FILE`); Prometheus scrapes with a
viewer token and sends alerts to Alertmanager (`ALERTMANAGER_URL`, `alerting:` in prometheus.yml).
)~";

}  // namespace

const char* InitProfileName(InitProfile p) {
  switch (p) {
    case InitProfile::kStaging:
      return "staging";
    case InitProfile::kProduction:
      return "production";
    case InitProfile::kDevelopment:
      break;
  }
  return "development";
}

const char* InitProfileShort(InitProfile p) {
  switch (p) {
    case InitProfile::kStaging:
      return "staging";
    case InitProfile::kProduction:
      return "prod";
    case InitProfile::kDevelopment:
      break;
  }
  return "dev";
}

std::vector<PlannedFile> RenderInitFiles(const ProjectInfo& info, InitProfile p) {
  const auto vars = Vars(info, p);
  std::string env = kEnvCommon;
  std::string prom = kPrometheusHead;
  std::string md = kMonitoringMd;
  if (p == InitProfile::kStaging) {
    env += kEnvStaging;
    md += kMonitoringStaging;
  } else if (p == InitProfile::kProduction) {
    env += kEnvProduction;
    md += kMonitoringProduction;
    prom += kPrometheusAlerting;
  }
  prom += kPrometheusScrape;
  if (p != InitProfile::kDevelopment)
    prom += kPrometheusToken;
  if (p == InitProfile::kProduction)
    prom += kPrometheusTls;
  std::vector<PlannedFile> out;
  out.push_back({".env.example", Fill(env, vars)});
  out.push_back({".gitignore", kGitignore, false, true});
  out.push_back({"start_stalk.sh", Fill(kStartScript, vars), true});
  out.push_back({"Dockerfile.stalk", Fill(kDockerfile, vars)});
  out.push_back({"stalk.service", Fill(kSystemdUnit, vars)});
  out.push_back({"monitoring/prometheus.yml", Fill(prom, vars)});
  out.push_back({"monitoring/stalk_rules.yml", Fill(kRules, vars)});
  out.push_back({"monitoring/grafana_dashboard.json", RenderGrafanaDashboard(info)});
  out.push_back({"MONITORING.md", Fill(md, vars)});
  return out;
}

const std::vector<std::string>& MonitoringMetricNames() {
  static const std::vector<std::string> kNames{"up",
                                               "stalk_broker_connected",
                                               "stalk_events_ingested_total",
                                               "stalk_ingest_dropped_total",
                                               "stalk_ingest_lag_seconds",
                                               "stalk_events_rejected_total",
                                               "flower_worker_online",
                                               "flower_events_total",
                                               "celery_queue_length",
                                               "stalk_tasks_lost_total",
                                               "flower_task_runtime_seconds_bucket",
                                               "flower_worker_number_of_currently_executing_tasks",
                                               "stalk_tasks_tracked",
                                               "stalk_process_resident_memory_bytes"};
  return kNames;
}

}  // namespace stalk
