// Stalk — Celery monitoring server.
#include "cli/settings.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

namespace stalk {
namespace {

struct SettingDef {
  const char* name;  // flag name without dashes (Flower's spelling)
  const char* help;
  std::vector<const char*> extra_env;
  // Assigns the parsed text; false when invalid.
  bool (*assign)(ServeSettings&, const std::string&);
  std::string (*show_default)(const ServeSettings&);
  CLI::Option* (*add)(CLI::App&, ServeSettings&, const std::string& flag, const std::string& help);
};

template <typename T>
bool ParseInto(T& dst, const std::string& text) {
  std::istringstream in(text);
  T v{};
  if (!(in >> v)) {
    return false;
  }
  char extra;
  if (in >> extra) {
    return false;
  }
  dst = v;
  return true;
}
template <>
bool ParseInto<std::string>(std::string& dst, const std::string& text) {
  dst = text;
  return true;
}

template <>
bool ParseInto<bool>(bool& dst, const std::string& text) {
  std::string t;
  for (char c : text) {
    t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (t == "1" || t == "true" || t == "yes" || t == "on") {
    dst = true;
  } else if (t == "0" || t == "false" || t == "no" || t == "off") {
    dst = false;
  } else {
    return false;
  }
  return true;
}

template <typename T>
std::string Show(const T& v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

#define STALK_SETTING(field, help, ...)                                                           \
  SettingDef {                                                                                    \
#field, help, {__VA_ARGS__},                                                                    \
        [](ServeSettings& s, const std::string& t) { return ParseInto(s.field, t); },               \
        [](const ServeSettings& s) { return Show(s.field); },                                      \
        [](CLI::App& app, ServeSettings& s, const std::string& flag, const std::string& h) {       \
          return app.add_option(flag, s.field, h);                                                  \
        } \
  }

// A boolean setting: `--name` alone means true; `--name=false` and env/config values true/false work.
#define STALK_FLAG_SETTING(field, help, ...)                                                      \
  SettingDef {                                                                                    \
#field, help, {__VA_ARGS__},                                                                    \
        [](ServeSettings& s, const std::string& t) { return ParseInto(s.field, t); },               \
        [](const ServeSettings& s) { return std::string(s.field ? "true" : "false"); },            \
        [](CLI::App& app, ServeSettings& s, const std::string& flag, const std::string& h) {       \
          return app.add_flag(flag, s.field, h);                                                    \
        } \
  }

const std::vector<SettingDef>& Defs() {
  static const std::vector<SettingDef> defs = {
      STALK_SETTING(broker,
                    "Celery broker URL: redis://[:password@]host:port/db, redis+socket:///path or "
                    "amqp://user:password@host:5672/vhost",
                    "CELERY_BROKER_URL", "BROKER_URL"),
      STALK_SETTING(address, "Address the HTTP server listens on (Flower binds all; Stalk defaults to loopback)"),
      STALK_SETTING(port, "HTTP port"),
      STALK_SETTING(url_prefix, "Serve everything under this path prefix (behind a reverse proxy)"),
      STALK_SETTING(max_tasks, "Most tasks kept in memory; the oldest is evicted first"),
      STALK_SETTING(max_workers, "Most workers kept in memory; offline ones are forgotten first"),
      STALK_SETTING(purge_offline_workers, "Forget workers offline for this many seconds (0 = keep)"),
      STALK_SETTING(inspect_timeout,
                    "Remote-control reply timeout in ms: give up when no worker answered for this long"),
      STALK_SETTING(
          result_backend,
          "Celery result backend URL for /api/task/result, apply and abort (redis:// only; default: the broker URL)",
          "CELERY_RESULT_BACKEND"),
      STALK_SETTING(queues, "Comma-separated queue names to report besides those seen on task events"),
      STALK_SETTING(global_keyprefix, "kombu's global_keyprefix transport option, if the app sets one"),
      STALK_SETTING(fanout_prefix, "kombu's fanout_prefix ('/{db}.' is kombu's default; '' for fanout_prefix=False)"),
      STALK_SETTING(event_queue_ttl,
                    "RabbitMQ: seconds an event waits in Stalk's event queue before the broker drops it "
                    "(x-message-ttl, Celery's event_queue_ttl; 0 = none)"),
      STALK_SETTING(event_queue_expires,
                    "RabbitMQ: seconds after which the broker deletes Stalk's event queue once unused (x-expires, "
                    "Celery's event_queue_expires)"),
      STALK_SETTING(event_prefetch,
                    "RabbitMQ: unacknowledged events in flight (basic.qos prefetch; acked in batches of half)"),
      STALK_SETTING(broker_heartbeat,
                    "RabbitMQ: AMQP heartbeat in seconds (0 = off); a silent broker is dropped after two missed"),
      STALK_SETTING(broker_api,
                    "RabbitMQ management API for queue lengths, as Flower's: http://user:password@host:15672/api/ "
                    "(default: passive queue.declare)"),
      STALK_SETTING(max_field_bytes,
                    "Longest args/kwargs/result/exception kept per task (longer ones are truncated and marked)"),
      STALK_SETTING(max_traceback_bytes, "Longest traceback kept per task"),
      STALK_SETTING(max_event_bytes, "Largest broker message decoded; larger ones are rejected and counted"),
      STALK_SETTING(ingest_queue_mb, "Memory bound of the queue between broker reader and state writer"),
      STALK_SETTING(http_threads, "HTTP server threads"),
      STALK_SETTING(
          stream_write_timeout,
          "Seconds a write to a live-event (SSE) client may stall before it is dropped as too slow (counted)"),
      STALK_SETTING(queue_poll_interval, "Seconds between queue-length polls for /metrics"),
      STALK_SETTING(metrics_compat,
                    "Metric name sets to export: flower, celery-exporter (comma-separated; '' for Stalk's own only)"),
      STALK_SETTING(task_runtime_metric_buckets,
                    "Runtime histogram buckets in seconds, comma-separated (default: Flower's)"),
      STALK_SETTING(metrics_max_task_names, "Most task-name label values exported; the rest are folded into 'other'"),
      STALK_SETTING(metrics_max_workers, "Most worker label values exported; the rest are folded into 'other'"),
      STALK_SETTING(logging, "Log level: debug, info, warning, error"),
      STALK_SETTING(capture,
                    "Also record the raw event stream to this capture file (for stalk replay); written by the state "
                    "writer, so messages shed when the ingest queue is full are not in it"),
      STALK_SETTING(basic_auth,
                    "HTTP Basic auth users user:password,... (admin role; prefer the environment to the command line)"),
      STALK_SETTING(
          basic_auth_file,
          "File of user:hash[:role] lines (bcrypt hashes from `stalk hash-password`; role viewer, operator or admin)"),
      STALK_SETTING(api_tokens_file,
                    "File of sha256hex:role:label lines for `Authorization: Bearer` tokens (`stalk token create`)"),
      STALK_FLAG_SETTING(metrics_public, "Serve /metrics without credentials (for Prometheus scrapes)"),
      STALK_FLAG_SETTING(xheaders,
                         "Behind a reverse proxy: take the client address from X-Real-Ip/X-Forwarded-For and the host "
                         "from X-Forwarded-Host"),
      STALK_SETTING(certfile, "TLS certificate chain (PEM): serve HTTPS (with --keyfile)"),
      STALK_SETTING(keyfile, "TLS private key (PEM) for --certfile"),
      STALK_SETTING(unix_socket,
                    "Listen on this Unix socket path instead of --address/--port (behind a local reverse proxy)"),
      STALK_FLAG_SETTING(insecure_no_auth,
                         "Allow a non-loopback --address with no authentication configured (also --insecure-no-auth)"),
      STALK_SETTING(auth, "OIDC login: regular expression of the e-mail addresses allowed in (Flower's --auth)"),
      STALK_SETTING(auth_provider,
                    "OIDC login provider: google, gitlab, okta or oidc (Flower's handler class names work)"),
      STALK_SETTING(oidc_issuer, "OIDC issuer URL (discovery at <issuer>/.well-known/openid-configuration)"),
      STALK_SETTING(oauth2_key, "OIDC client id"),
      STALK_SETTING(oauth2_secret, "OIDC client secret (a secret: set it in the environment)"),
      STALK_SETTING(oauth2_redirect_uri, "Stalk's /login URL as registered with the provider"),
      STALK_SETTING(oidc_role, "Role of users who log in with OIDC: viewer, operator or admin"),
      STALK_SETTING(oidc_ca_file, "Extra CA certificates (PEM) to trust for the OIDC provider"),
      STALK_SETTING(cookie_secret,
                    "Key that signs login session cookies, 32+ characters (a secret: set it in the environment)"),
      STALK_SETTING(metric_rules,
                    "YAML file of business-metric rules over events (stalk_biz_* families); reloaded on SIGHUP"),
      STALK_SETTING(cost_per_worker_hour,
                    "Price of one worker-hour: turns worker time into money in /api/stalk/cost and "
                    "stalk_task_cost_total (0 = seconds only)"),
      STALK_SETTING(tasks_columns, "Dashboard: the tasks table's default columns, comma-separated (as Flower)"),
      STALK_SETTING(db,
                    "Durable task history: a SQLite file, or postgresql://user@host/db to share one history between "
                    "instances ('' or 'none': memory only)"),
      STALK_FLAG_SETTING(persistent,
                         "Keep task history in --db and reload it on start (Flower's flag; on by default in Stalk)"),
      STALK_SETTING(retention, "Delete stored tasks older than this: 7d, 12h, 30m, 3600s (0 = keep)"),
      STALK_SETTING(max_stored_tasks, "Most tasks kept in --db; the oldest are deleted first (0 = unbounded)"),
      STALK_SETTING(
          store_queue_mb,
          "Memory bound of the queue between ingestion and --db; past it history rows are dropped and counted"),
      STALK_FLAG_SETTING(store_events, "Also keep every event in --db (the events table)"),
      STALK_SETTING(state_save_interval,
                    "Flower's snapshot interval in ms: accepted and ignored (Stalk writes history continuously)"),
      STALK_SETTING(alerts_config,
                    "Alert rules and notification channels (YAML; see README \"Alerting\"); empty: no alerting"),
      STALK_SETTING(
          sentry_max_per_minute,
          "With SENTRY_DSN set: most task failures forwarded to Sentry per minute (the rest are counted and dropped)"),
  };
  return defs;
}

std::string Upper(std::string s) {
  for (char& c : s) {
    c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return s;
}

const SettingDef* FindSetting(std::string_view name) {
  for (const SettingDef& d : Defs()) {
    if (name == d.name) {
      return &d;
    }
  }
  return nullptr;
}

}  // namespace

Result<std::map<std::string, std::string>> ParseConfigText(std::string_view text, const std::string& origin) {
  auto trim = [](std::string_view v) {
    const size_t a = v.find_first_not_of(" \t\r");
    const size_t b = v.find_last_not_of(" \t\r");
    return a == std::string_view::npos ? std::string() : std::string(v.substr(a, b - a + 1));
  };
  std::map<std::string, std::string> out;
  int lineno = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++lineno;
    // A `#` starts a comment unless a quote comes first (`broker = 'redis://h/0#x'` keeps its value).
    const size_t hash = line.find('#');
    if (hash != std::string_view::npos && line.find_first_of("'\"") > hash) {
      line = line.substr(0, hash);
    }
    if (trim(line).empty()) {
      continue;
    }
    const size_t eq = line.find('=');
    std::string key = eq == std::string_view::npos ? std::string() : trim(line.substr(0, eq));
    if (key.empty()) {
      return Error{origin + ":" + std::to_string(lineno) + ": expected `name = value`"};
    }
    std::string value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '\'' || value.front() == '"') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    out[std::move(key)] = std::move(value);
  }
  return out;
}

Result<bool> AssignSetting(ServeSettings& s, std::string_view name, const std::string& text) {
  const SettingDef* d = FindSetting(name);
  if (d == nullptr) {
    return Error{"unknown setting '" + std::string(name) + "'"};
  }
  if (!d->assign(s, text)) {
    return Error{"invalid value for '" + std::string(name) + "'"};
  }
  return true;
}

void RegisterServeSettings(CLI::App& app, ServeSettings& s) {
  for (const SettingDef& d : Defs()) {
    std::string help = d.help;
    std::string env = "STALK_" + Upper(d.name) + ", FLOWER_" + Upper(d.name);
    for (const char* e : d.extra_env) {
      env += std::string(", ") + e;
    }
    d.add(app, s, std::string("--") + d.name, help + " [env: " + env + "]")->capture_default_str();
  }
  app.add_option("--conf", s.conf, "Config file of `name = value` lines (a simple flowerconfig.py works)");
}

Result<bool> ApplyEnvAndConfig(CLI::App& app, ServeSettings& s) {
  std::map<std::string, std::string> file;
  if (!s.conf.empty()) {
    std::ifstream in(s.conf, std::ios::binary);
    if (!in) {
      return Error{"cannot read config file " + s.conf};
    }
    std::ostringstream text;
    text << in.rdbuf();
    auto r = ParseConfigText(text.str(), s.conf);
    if (!r) {
      return Error{r.error()};
    }
    file = std::move(*r);
  }
  for (const SettingDef& d : Defs()) {
    if (app.get_option(std::string("--") + d.name)->count() > 0) {
      continue;
    }
    std::vector<std::string> envs = {"STALK_" + Upper(d.name), "FLOWER_" + Upper(d.name)};
    for (const char* e : d.extra_env) {
      envs.emplace_back(e);
    }
    bool done = false;
    for (const auto& e : envs) {
      if (const char* v = std::getenv(e.c_str()); v && *v) {
        if (!d.assign(s, v)) {
          return Error{"invalid value in environment variable " + e + " for --" + d.name};
        }
        done = true;
        break;
      }
    }
    if (!done) {
      if (auto it = file.find(d.name); it != file.end()) {
        if (!d.assign(s, it->second)) {
          return Error{"invalid value for '" + std::string(d.name) + "' in " + s.conf};
        }
      }
    }
  }
  return true;
}

std::string SettingsMarkdown() {
  ServeSettings defaults;
  std::string out = "| option | environment | default | meaning |\n|---|---|---|---|\n";
  for (const SettingDef& d : Defs()) {
    std::string env = "`STALK_" + Upper(d.name) + "`, `FLOWER_" + Upper(d.name) + "`";
    for (const char* e : d.extra_env) {
      env += std::string(", `") + e + "`";
    }
    std::string def = d.show_default(defaults);
    out += std::string("| `--") + d.name + "` | " + env + " | " + (def.empty() ? "" : "`" + def + "`") + " | " +
           d.help + " |\n";
  }
  out += "| `--conf` | | | Config file of `name = value` lines (a simple flowerconfig.py works) |\n";
  return out;
}

}  // namespace stalk
