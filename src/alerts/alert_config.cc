// Stalk — Celery monitoring server.
// The rules file parser: yaml-cpp nodes -> AlertConfig. yaml-cpp throws; this file is the edge where
// its exceptions become one Error with the file, line and column (start-up only).
#include "alerts/alert_config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "alerts/duration.h"

namespace stalk {
namespace {

struct ParseError {
  YAML::Mark mark;
  std::string message;
};

[[noreturn]] void Fail(const YAML::Node& at, std::string message) { throw ParseError{at.Mark(), std::move(message)}; }

void CheckKeys(const YAML::Node& map, const std::set<std::string>& allowed, const std::string& what) {
  if (!map.IsMap()) {
    Fail(map, what + " must be a mapping");
  }
  for (const auto& kv : map) {
    const auto key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      std::string list;
      for (const auto& a : allowed) {
        list += (list.empty() ? "" : ", ") + a;
      }
      Fail(kv.first, "unknown key '" + key + "' in " + what + " (known: " + list + ")");
    }
  }
}

std::string Str(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) {
    Fail(n, "'" + key + "' must be a string");
  }
  return n.as<std::string>();
}

double Num(const YAML::Node& n, const std::string& key) {
  try {
    return n.as<double>();
  } catch (const YAML::Exception&) {
    Fail(n, "'" + key + "' must be a number");
  }
}

double Dur(const YAML::Node& n, const std::string& key) {
  auto d = ParseRuleDuration(Str(n, key));
  if (!d) {
    Fail(n, "'" + key + "': " + d.error());
  }
  return *d;
}

bool Bool(const YAML::Node& n, const std::string& key) {
  try {
    return n.as<bool>();
  } catch (const YAML::Exception&) {
    Fail(n, "'" + key + "' must be true or false");
  }
}

std::vector<std::string> StrList(const YAML::Node& n, const std::string& key) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.as<std::string>());
    return out;
  }
  if (!n.IsSequence()) {
    Fail(n, "'" + key + "' must be a list of strings");
  }
  for (const auto& item : n) {
    out.push_back(Str(item, key));
  }
  return out;
}

std::map<std::string, std::string> StrMap(const YAML::Node& n, const std::string& key) {
  if (!n.IsMap()) {
    Fail(n, "'" + key + "' must be a mapping of strings");
  }
  std::map<std::string, std::string> out;
  for (const auto& kv : n) {
    out[kv.first.as<std::string>()] = Str(kv.second, key);
  }
  return out;
}

bool ValidEnvName(const std::string& s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

ChannelConfig ParseChannel(const std::string& name, const YAML::Node& n) {
  CheckKeys(n,
            {"type", "url_env", "secret_env", "routing_key_env", "username_env", "password_env", "from", "to",
             "starttls", "timeout", "max_retries"},
            "channel '" + name + "'");
  ChannelConfig c;
  c.name = name;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.') {
      Fail(n, "channel name '" + name + "' may only hold letters, digits, '_', '-' and '.'");
    }
  }
  if (!n["type"]) {
    Fail(n, "channel '" + name + "' needs a type (slack, pagerduty, webhook, alertmanager, email)");
  }
  const std::string type = Str(n["type"], "type");
  if (type == "slack")
    c.type = ChannelType::kSlack;
  else if (type == "pagerduty")
    c.type = ChannelType::kPagerDuty;
  else if (type == "webhook")
    c.type = ChannelType::kWebhook;
  else if (type == "alertmanager")
    c.type = ChannelType::kAlertmanager;
  else if (type == "email")
    c.type = ChannelType::kEmail;
  else
    Fail(n["type"], "unknown channel type '" + type + "' (slack, pagerduty, webhook, alertmanager, email)");
  for (auto [key, field] : {std::pair{"url_env", &c.url_env}, std::pair{"secret_env", &c.secret_env},
                            std::pair{"routing_key_env", &c.routing_key_env},
                            std::pair{"username_env", &c.username_env}, std::pair{"password_env", &c.password_env}}) {
    if (n[key]) {
      *field = Str(n[key], key);
      if (!ValidEnvName(*field)) {
        Fail(n[key], std::string("'") + key +
                         "' must name an environment variable (e.g. STALK_SLACK_WEBHOOK_URL), "
                         "not hold the value");
      }
    }
  }
  if (n["from"])
    c.from = Str(n["from"], "from");
  if (n["to"])
    c.to = StrList(n["to"], "to");
  if (n["starttls"])
    c.starttls = Bool(n["starttls"], "starttls");
  if (n["timeout"])
    c.timeout = Dur(n["timeout"], "timeout");
  if (n["max_retries"])
    c.max_retries = static_cast<int>(Num(n["max_retries"], "max_retries"));
  if (c.type == ChannelType::kPagerDuty) {
    if (c.routing_key_env.empty())
      Fail(n, "pagerduty channel '" + name + "' needs routing_key_env");
  } else if (c.url_env.empty()) {
    Fail(n, "channel '" + name + "' needs url_env (the environment variable holding its URL)");
  }
  if (c.type == ChannelType::kEmail && (c.from.empty() || c.to.empty())) {
    Fail(n, "email channel '" + name + "' needs from and to");
  }
  return c;
}

RuleKind ParseKind(const YAML::Node& n) {
  static const std::map<std::string, RuleKind> kinds = {{"worker_offline", RuleKind::kWorkerOffline},
                                                        {"queue_length", RuleKind::kQueueLength},
                                                        {"task_failure_rate", RuleKind::kTaskFailureRate},
                                                        {"task_failure_count", RuleKind::kTaskFailureCount},
                                                        {"task_runtime", RuleKind::kTaskRuntime},
                                                        {"task_not_succeeded", RuleKind::kTaskNotSucceeded},
                                                        {"dead_man", RuleKind::kTaskNotSucceeded},
                                                        {"ingest_lag", RuleKind::kIngestLag},
                                                        {"broker_unreachable", RuleKind::kBrokerUnreachable},
                                                        {"queue_wait", RuleKind::kQueueWait},
                                                        {"no_consumer", RuleKind::kNoConsumer},
                                                        {"store_errors", RuleKind::kStoreErrors},
                                                        {"result_backend_errors", RuleKind::kResultBackendErrors}};
  const std::string k = Str(n, "kind");
  auto it = kinds.find(k);
  if (it == kinds.end()) {
    Fail(n, "unknown rule kind '" + k +
                "' (worker_offline, queue_length, task_failure_rate, task_failure_count, task_runtime, "
                "task_not_succeeded, queue_wait, no_consumer, store_errors, result_backend_errors, ingest_lag, "
                "broker_unreachable)");
  }
  return it->second;
}

void ParseParams(RuleConfig& r, const YAML::Node& p) {
  CheckKeys(p,
            {"task", "queue", "worker", "threshold", "window", "min_count", "percentile", "sla", "max_age",
             "missed_heartbeats"},
            "params of rule '" + r.name + "'");
  if (p["task"])
    r.task = Str(p["task"], "task");
  if (p["queue"])
    r.queue = Str(p["queue"], "queue");
  if (p["worker"])
    r.worker = Str(p["worker"], "worker");
  if (p["threshold"])
    r.threshold = Num(p["threshold"], "threshold");
  if (p["window"])
    r.window = Dur(p["window"], "window");
  if (p["min_count"])
    r.min_count = static_cast<int>(Num(p["min_count"], "min_count"));
  if (p["percentile"])
    r.percentile = Num(p["percentile"], "percentile");
  if (p["sla"])
    r.sla = Dur(p["sla"], "sla");
  if (p["max_age"])
    r.max_age = Dur(p["max_age"], "max_age");
  if (p["missed_heartbeats"])
    r.missed_heartbeats = static_cast<int>(Num(p["missed_heartbeats"], "missed_heartbeats"));
  if (r.window <= 0)
    Fail(p["window"], "'window' must be positive");
  if (r.percentile < 0 || r.percentile >= 100)
    Fail(p["percentile"], "'percentile' must be in [0, 100)");
  if (r.missed_heartbeats < 1)
    Fail(p["missed_heartbeats"], "'missed_heartbeats' must be at least 1");
}

RuleConfig ParseRule(const YAML::Node& n, const AlertConfig& cfg, std::set<std::string>& names) {
  CheckKeys(n,
            {"name", "kind", "for", "severity", "labels", "annotations", "channels", "params", "repeat_interval",
             "send_resolved", "group_by", "group_wait", "group_interval"},
            "rule");
  RuleConfig r;
  if (!n["name"])
    Fail(n, "rule needs a name");
  r.name = Str(n["name"], "name");
  if (!names.insert(r.name).second)
    Fail(n["name"], "duplicate rule name '" + r.name + "'");
  if (!n["kind"])
    Fail(n, "rule '" + r.name + "' needs a kind");
  r.kind = ParseKind(n["kind"]);
  if (n["for"])
    r.for_seconds = Dur(n["for"], "for");
  if (n["severity"])
    r.severity = Str(n["severity"], "severity");
  if (n["labels"])
    r.labels = StrMap(n["labels"], "labels");
  if (n["annotations"])
    r.annotations = StrMap(n["annotations"], "annotations");
  r.channels = n["channels"] ? StrList(n["channels"], "channels") : cfg.default_channels;
  for (size_t i = 0; i < r.channels.size(); ++i) {
    if (!cfg.FindChannel(r.channels[i])) {
      Fail(n["channels"] ? n["channels"] : n, "rule '" + r.name + "' names unknown channel '" + r.channels[i] + "'");
    }
  }
  if (n["repeat_interval"])
    r.repeat_interval = Dur(n["repeat_interval"], "repeat_interval");
  if (n["send_resolved"])
    r.send_resolved = Bool(n["send_resolved"], "send_resolved");
  r.group_by = n["group_by"] ? StrList(n["group_by"], "group_by") : cfg.group_by;
  r.group_wait = n["group_wait"] ? Dur(n["group_wait"], "group_wait") : cfg.group_wait;
  r.group_interval = n["group_interval"] ? Dur(n["group_interval"], "group_interval") : cfg.group_interval;
  if (n["params"])
    ParseParams(r, n["params"]);
  if (r.kind == RuleKind::kTaskNotSucceeded && (r.task.empty() || r.max_age <= 0)) {
    Fail(n, "rule '" + r.name + "' (task_not_succeeded) needs params.task and params.max_age");
  }
  if (r.kind == RuleKind::kTaskRuntime && r.sla <= 0) {
    Fail(n, "rule '" + r.name + "' (task_runtime) needs params.sla");
  }
  if (r.kind == RuleKind::kTaskFailureRate && (r.threshold <= 0 || r.threshold >= 1)) {
    Fail(n, "rule '" + r.name + "' (task_failure_rate) needs params.threshold in (0, 1), e.g. 0.2");
  }
  return r;
}

}  // namespace

std::string_view ChannelTypeName(ChannelType t) {
  switch (t) {
    case ChannelType::kSlack:
      return "slack";
    case ChannelType::kPagerDuty:
      return "pagerduty";
    case ChannelType::kWebhook:
      return "webhook";
    case ChannelType::kAlertmanager:
      return "alertmanager";
    case ChannelType::kEmail:
      return "email";
  }
  return "unknown";
}

std::string_view RuleKindName(RuleKind k) {
  switch (k) {
    case RuleKind::kWorkerOffline:
      return "worker_offline";
    case RuleKind::kQueueLength:
      return "queue_length";
    case RuleKind::kTaskFailureRate:
      return "task_failure_rate";
    case RuleKind::kTaskFailureCount:
      return "task_failure_count";
    case RuleKind::kTaskRuntime:
      return "task_runtime";
    case RuleKind::kTaskNotSucceeded:
      return "task_not_succeeded";
    case RuleKind::kIngestLag:
      return "ingest_lag";
    case RuleKind::kBrokerUnreachable:
      return "broker_unreachable";
    case RuleKind::kQueueWait:
      return "queue_wait";
    case RuleKind::kNoConsumer:
      return "no_consumer";
    case RuleKind::kStoreErrors:
      return "store_errors";
    case RuleKind::kResultBackendErrors:
      return "result_backend_errors";
  }
  return "unknown";
}

const ChannelConfig* AlertConfig::FindChannel(std::string_view name) const {
  for (const auto& c : channels) {
    if (c.name == name)
      return &c;
  }
  return nullptr;
}

Result<AlertConfig> ParseAlertConfig(const std::string& text, const std::string& source) {
  auto where = [&](const YAML::Mark& m) {
    return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
  };
  try {
    const YAML::Node root = YAML::Load(text);
    AlertConfig cfg;
    if (!root || root.IsNull()) {
      return cfg;
    }
    CheckKeys(root,
              {"channels", "rules", "evaluation_interval", "resolved_retention", "default_channels", "group_by",
               "group_wait", "group_interval"},
              "the rules file");
    if (root["group_by"])
      cfg.group_by = StrList(root["group_by"], "group_by");
    if (root["group_wait"])
      cfg.group_wait = Dur(root["group_wait"], "group_wait");
    if (root["group_interval"])
      cfg.group_interval = Dur(root["group_interval"], "group_interval");
    if (root["evaluation_interval"])
      cfg.evaluation_interval = Dur(root["evaluation_interval"], "evaluation_interval");
    if (root["resolved_retention"])
      cfg.resolved_retention = Dur(root["resolved_retention"], "resolved_retention");
    if (cfg.evaluation_interval <= 0)
      Fail(root["evaluation_interval"], "'evaluation_interval' must be positive");
    if (auto ch = root["channels"]) {
      if (!ch.IsMap())
        Fail(ch, "'channels' must be a mapping of channel name to settings");
      for (const auto& kv : ch) {
        cfg.channels.push_back(ParseChannel(kv.first.as<std::string>(), kv.second));
      }
    }
    if (root["default_channels"]) {
      cfg.default_channels = StrList(root["default_channels"], "default_channels");
      for (const auto& c : cfg.default_channels) {
        if (!cfg.FindChannel(c))
          Fail(root["default_channels"], "unknown channel '" + c + "'");
      }
    }
    if (auto rules = root["rules"]) {
      if (!rules.IsSequence())
        Fail(rules, "'rules' must be a list");
      std::set<std::string> names;
      for (const auto& r : rules) {
        cfg.rules.push_back(ParseRule(r, cfg, names));
      }
    }
    return cfg;
  } catch (const ParseError& e) {
    return Error{where(e.mark) + e.message};
  } catch (const YAML::Exception& e) {
    return Error{where(e.mark) + e.msg};
  }
}

Result<AlertConfig> LoadAlertConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Error{"cannot read alerts config " + path};
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseAlertConfig(buf.str(), path);
}

}  // namespace stalk
