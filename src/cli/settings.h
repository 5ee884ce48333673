// Stalk — Celery monitoring server.
// Settings: every `stalk serve` option declared once — name (Flower's where one exists), type,
// default, help — and read from, in this order of precedence: command-line flags, environment
// (STALK_<NAME>, then FLOWER_<NAME>, then any extra names such as CELERY_BROKER_URL), a config file
// (--conf; `name = value` lines, so simple flowerconfig.py files work), then the default.
// The README options table is generated from the same list (`stalk serve --help-markdown`).
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace stalk {

struct ServeSettings {
  std::string broker;
  std::string address = "127.0.0.1";
  int port = 5555;
  std::string url_prefix;
  int max_tasks = 100000;
  int max_workers = 5000;
  double purge_offline_workers = 0;
  int inspect_timeout = 1000;
  std::string result_backend;  // Celery result backend URL (Redis); empty: the broker URL
  std::string queues;          // comma-separated extra queue names
  std::string global_keyprefix;
  std::string fanout_prefix = "/{db}.";
  // RabbitMQ (amqp://): Celery's event queue settings, the consumer prefetch, heartbeats.
  double event_queue_ttl = 5.0;
  double event_queue_expires = 60.0;
  int event_prefetch = 1000;
  int broker_heartbeat = 30;
  std::string broker_api;  // RabbitMQ management API (Flower's), e.g. http://user:pass@host:15672/api/
  int max_field_bytes = 4096;
  int max_traceback_bytes = 16384;
  int max_event_bytes = 64 << 20;
  int ingest_queue_mb = 256;
  int http_threads = 2;
  int stream_write_timeout = 30;  // seconds a write to a live-event (SSE) client may stall
  double queue_poll_interval = 5;
  std::string metrics_compat = "flower,celery-exporter";
  std::string task_runtime_metric_buckets;
  int metrics_max_task_names = 1000;
  int metrics_max_workers = 5000;
  std::string logging = "info";
  std::string conf;
  std::string capture;          // also record the raw stream to this file
  std::string basic_auth;       // "user:pass,..." (a secret: never logged)
  std::string basic_auth_file;  // user:hash[:role] lines
  std::string api_tokens_file;  // sha256hex:role:label lines
  bool metrics_public = false;
  bool xheaders = false;
  std::string certfile;     // TLS certificate chain (PEM)
  std::string keyfile;      // TLS private key (PEM)
  std::string unix_socket;  // listen here instead of address:port
  bool insecure_no_auth = false;
  std::string auth;           // OIDC: allowed e-mail regex (Flower's --auth)
  std::string auth_provider;  // google, gitlab, okta, oidc
  std::string oidc_issuer;
  std::string oauth2_key;     // client id
  std::string oauth2_secret;  // client secret (a secret: never logged)
  std::string oauth2_redirect_uri;
  std::string oidc_role = "viewer";
  std::string oidc_ca_file;
  std::string cookie_secret;  // a secret: never logged
  double cost_per_worker_hour = 0;
  std::string metric_rules;  // YAML rules file (custom/metric_rules.h)
  std::string tasks_columns = "name,uuid,state,args,kwargs,result,received,started,runtime,worker";
  // Durable history (src/store/README.md).
  std::string db = "stalk.db";  // SQLite file or postgresql:// URL; "" or "none": memory only
  bool persistent = true;       // Flower's flag (default false there); false: memory only
  std::string retention = "0";  // max age of stored tasks: 7d, 12h, 3600s; 0 = keep
  int max_stored_tasks = 0;     // 0 = unbounded
  int store_queue_mb = 128;
  bool store_events = false;
  int state_save_interval = 0;  // Flower's (ms): accepted, unused — Stalk writes continuously
  // Alerting (src/alerts/); Sentry's DSN and environment come from SENTRY_DSN/SENTRY_ENVIRONMENT only.
  std::string alerts_config;
  double sentry_max_per_minute = 60;
};

// Registers every setting on `app` (a CLI11 subcommand).
void RegisterServeSettings(CLI::App& app, ServeSettings& s);
// After parsing: fills settings not given as flags from env and the config file. Errors name the
// setting and the source (never its value: it may be a secret).
Result<bool> ApplyEnvAndConfig(CLI::App& app, ServeSettings& s);
// A config file's text: `name = value` lines, `#` comments, values optionally quoted. Errors say
// "<origin>:<line>: why".
Result<std::map<std::string, std::string>> ParseConfigText(std::string_view text, const std::string& origin);
// Sets one setting from its text form, as the environment and the config file do. An error when
// `name` is no setting or `text` no valid value for it (the message never holds the value).
Result<bool> AssignSetting(ServeSettings& s, std::string_view name, const std::string& text);
// Markdown table of the settings, for README.
std::string SettingsMarkdown();

}  // namespace stalk
