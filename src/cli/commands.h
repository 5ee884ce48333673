// Stalk — Celery monitoring server.
// The subcommands' entry points; each returns the process exit code.
#pragma once

#include <string>

#include "cli/settings.h"

namespace stalk {

int RunServe(ServeSettings settings);

struct ReplaySettings {
  std::string file;
  int max_tasks = 1000000;
  int repeat = 1;
};
int RunReplay(const ReplaySettings& s);

struct CaptureSettings {
  std::string broker;
  std::string output;
  double duration = 10;
  long long max_messages = 10000000;
  std::string global_keyprefix;
  std::string fanout_prefix = "/{db}.";
};
int RunCapture(const CaptureSettings& s);

// `stalk rules export`: writes Prometheus alerting rules for the alerts config (stdout when output is empty).
int RunRulesExport(const std::string& config_path, const std::string& output);

}  // namespace stalk
