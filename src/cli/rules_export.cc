// Stalk — Celery monitoring server.
// `stalk rules export --alerts_config F [-o rules.yml]`: the rules file as Prometheus alerting rules
// (alerts/prometheus_rules.h), for `promtool check rules` and Prometheus' rule_files.
#include <cstdio>
#include <fstream>

#include "alerts/alert_config.h"
#include "alerts/prometheus_rules.h"
#include "cli/commands.h"
#include "common/log.h"

namespace stalk {

int RunRulesExport(const std::string& config_path, const std::string& output) {
  auto cfg = LoadAlertConfig(config_path);
  if (!cfg) {
    Logger("stalk")->error("--alerts_config: {}", cfg.error());
    return 2;
  }
  const std::string yaml = PrometheusRulesYaml(*cfg);
  if (output.empty() || output == "-") {
    std::fputs(yaml.c_str(), stdout);
    return 0;
  }
  std::ofstream out(output);
  out << yaml;
  if (!out) {
    Logger("stalk")->error("cannot write {}", output);
    return 1;
  }
  return 0;
}

}  // namespace stalk
