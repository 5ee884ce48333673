// Stalk — Celery monitoring server.
// fuzz_config: the text operators write — a --metric_rules file (business metrics and its `sla:`
// section), an --alerts_config file, a silence POST body, a task submission body (/api/task/apply) and
// its ETA/expires dates, and a `--conf` file (each value then set as `stalk serve` would). The first
// byte picks the parser; the rest is the text.
#include <string>
#include <string_view>

#include "alerts/alert_config.h"
#include "alerts/silences.h"
#include "cli/settings.h"
#include "control/task_submission.h"
#include "custom/metric_rules.h"
#include "custom/sla_tracker.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {
namespace {

constexpr double kNow = 1700000000.0;

template <typename R>
void ExpectReason(const R& r) {
  if (!r) {
    FuzzCheck(!r.error().empty(), "a parse error says why");
  }
}

}  // namespace

int FuzzConfig(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto rules = MetricRules::Parse(text, "rules.yml");
      ExpectReason(rules);
      if (!rules) {
        FuzzCheck(rules.error().rfind("rules.yml:", 0) == 0, "a rules error starts with where it is");
      }
      break;
    }
    case 1:
      ExpectReason(SlaTracker::Parse(text, "rules.yml"));
      break;
    case 2: {
      auto config = ParseAlertConfig(text, "alerts.yml");
      ExpectReason(config);
      if (config) {
        FuzzCheck(config->evaluation_interval > 0, "a parsed alerts config evaluates at a positive interval");
      }
      break;
    }
    case 3: {
      auto silence = Silences::Parse(text, kNow);
      ExpectReason(silence);
      ExpectReason(ParseMatchersJson(text));
      break;
    }
    case 4: {
      ExpectReason(ParseTaskSubmission(text, "app.add", kNow));
      auto date = ParseTaskDate(text);
      ExpectReason(date);
      break;
    }
    case 5: {
      auto file = ParseConfigText(text, "stalk.conf");
      if (!file) {
        FuzzCheck(file.error().rfind("stalk.conf:", 0) == 0, "a config error starts with where it is");
        break;
      }
      ServeSettings settings;
      for (const auto& [name, value] : *file) {
        FuzzCheck(!name.empty() && name.find_first_of("=\n") == std::string::npos, "a key is one line's left side");
        FuzzCheck(std::string_view(" \t\r").find(name.front()) == std::string_view::npos &&
                      std::string_view(" \t\r").find(name.back()) == std::string_view::npos,
                  "a key is trimmed");
        auto set = AssignSetting(settings, name, value);
        // The value may be a secret (a broker password, a cookie secret): errors name only the setting.
        if (!set) {
          FuzzCheck(
              set.error() == "unknown setting '" + name + "'" || set.error() == "invalid value for '" + name + "'",
              "a setting error names the setting, never the value");
        }
      }
      break;
    }
  }
  return 0;
}

}  // namespace stalk::fuzz
