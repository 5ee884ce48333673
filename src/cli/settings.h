// Stalk — Celery monitoring server.
// Settings: every `stalk serve` option declared once — name (Flower's where one exists), type,
// default, help — and read from, in this order of precedence: command-line flags, environment
// (STALK_<NAME>, then FLOWER_<NAME>, then any extra names such as CELERY_BROKER_URL), a config file
// (--conf; `name = value` lines, so simple flowerconfig.py files work), then the default.
// The README options table is generated from the same list (`stalk serve --help-markdown`).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
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
  std::string queues;  // comma-separated extra queue names
  std::string global_keyprefix;
  std::string fanout_prefix = "/{db}.";
  int max_field_bytes = 4096;
  int max_traceback_bytes = 16384;
  int max_event_bytes = 64 << 20;
  int ingest_queue_mb = 256;
  int http_threads = 2;
  double queue_poll_interval = 5;
  std::string metrics_compat = "flower,celery-exporter";
  std::string task_runtime_metric_buckets;
  int metrics_max_task_names = 1000;
  int metrics_max_workers = 5000;
  std::string logging = "info";
  std::string conf;
  std::string capture;  // also record the raw stream to this file
};

// Registers every setting on `app` (a CLI11 subcommand).
void RegisterServeSettings(CLI::App& app, ServeSettings& s);
// After parsing: fills settings not given as flags from env and the config file. Errors name the
// setting and the source (never its value: it may be a secret).
Result<bool> ApplyEnvAndConfig(CLI::App& app, ServeSettings& s);
// Markdown table of the settings, for README.
std::string SettingsMarkdown();

}  // namespace stalk
