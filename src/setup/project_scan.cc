// Stalk — Celery monitoring server.
// ProjectScan (see project_scan.h): walks the project (a few levels, skipping virtualenvs, VCS and
// build folders), then reads each interesting file line by line with a handful of patterns. It is a
// heuristic by design: a project that builds its settings dynamically is reported as "not found",
// and the report says what to add rather than guessing.
#include "setup/project_scan.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace stalk {
namespace fs = std::filesystem;
namespace {

constexpr int kMaxDepth = 4;  // proj/proj/settings/base.py is as deep as real layouts go
constexpr uintmax_t kMaxFileBytes = 1 << 20;

enum class FileKind { kPython, kRequirements, kPyproject, kEnv, kScript };

bool SkippedDir(const std::string& name) {
  static const std::set<std::string> kSkip{
      ".git",  ".hg",  ".svn", "node_modules", "venv",          ".venv",      "env",    "__pycache__", "site-packages",
      "build", "dist", ".tox", ".mypy_cache",  ".pytest_cache", "monitoring", "static", "media"};
  return kSkip.count(name) > 0;
}

bool Classify(const fs::path& rel, FileKind& kind) {
  const std::string name = rel.filename().string();
  const std::string parent = rel.has_parent_path() ? rel.parent_path().filename().string() : "";
  if (name == "celery.py" || name == "celeryconfig.py" || name == "celery_app.py" || name == "settings.py" ||
      name == "tasks.py" || name == "worker.py" || (parent == "settings" && rel.extension() == ".py")) {
    kind = FileKind::kPython;
    return true;
  }
  if (name.rfind("requirements", 0) == 0 && rel.extension() == ".txt") {
    kind = FileKind::kRequirements;
    return true;
  }
  if (name == "pyproject.toml" || name == "Pipfile" || name == "setup.cfg") {
    kind = FileKind::kPyproject;
    return true;
  }
  if (name == ".env") {
    kind = FileKind::kEnv;
    return true;
  }
  if (name == "start_stalk.sh" || name == "stalk.service")
    return false;  // ours
  if (rel.extension() == ".sh" || name == "Procfile" || name == "Makefile" || rel.extension() == ".service" ||
      name == "Dockerfile" ||
      (name.rfind("docker-compose", 0) == 0 && (rel.extension() == ".yml" || rel.extension() == ".yaml")) ||
      name == "compose.yml" || name == "compose.yaml" ||
      (name.rfind("supervisor", 0) == 0 && rel.extension() == ".conf")) {
    kind = FileKind::kScript;
    return true;
  }
  return false;
}

std::string ReadAll(const fs::path& p) {
  std::error_code ec;
  if (fs::file_size(p, ec) > kMaxFileBytes || ec)
    return {};
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    out.push_back(line);
  }
  return out;
}

BrokerKind KindFromScheme(const std::string& text) {
  static const std::regex kScheme(
      R"((rediss?|redis\+socket|sentinel|amqps?|pyamqp|librabbitmq|sqs|memory|filesystem)://)");
  std::smatch m;
  if (!std::regex_search(text, m, kScheme))
    return BrokerKind::kUnknown;
  const std::string s = m[1].str();
  if (s.rfind("redis", 0) == 0 || s == "sentinel")
    return BrokerKind::kRedis;
  if (s == "sqs")
    return BrokerKind::kSqs;
  if (s == "memory" || s == "filesystem")
    return BrokerKind::kOther;
  return BrokerKind::kAmqp;
}

// One Celery setting under its three spellings (Celery's "New lowercase settings" table).
struct SettingNames {
  const char* lower;
  const char* django;
  const char* legacy;
};
constexpr SettingNames kBroker{"broker_url", "CELERY_BROKER_URL", "BROKER_URL"};
constexpr SettingNames kTaskEvents{"worker_send_task_events", "CELERY_WORKER_SEND_TASK_EVENTS", "CELERY_SEND_EVENTS"};
constexpr SettingNames kSentEvent{"task_send_sent_event", "CELERY_TASK_SEND_SENT_EVENT", "CELERY_SEND_TASK_SENT_EVENT"};
constexpr SettingNames kQueueTtl{"event_queue_ttl", "CELERY_EVENT_QUEUE_TTL", "CELERY_EVENT_QUEUE_TTL"};
constexpr SettingNames kQueueExpires{"event_queue_expires", "CELERY_EVENT_QUEUE_EXPIRES", "CELERY_EVENT_QUEUE_EXPIRES"};
constexpr SettingNames kHijack{"worker_hijack_root_logger", "CELERY_WORKER_HIJACK_ROOT_LOGGER",
                               "CELERYD_HIJACK_ROOT_LOGGER"};

// The value assigned to `name` on this line (NAME = v, conf.NAME = v, NAME=v in a call, 'NAME': v).
bool MatchSetting(const std::string& line, const std::string& name, std::string& value) {
  const std::regex re("(?:^|[^A-Za-z0-9_])" + name + R"(['"]?\s*[:=]\s*([^#\n]*))");
  std::smatch m;
  if (!std::regex_search(line, m, re))
    return false;
  value = m[1].str();
  return true;
}

bool MatchAny(const std::string& line, const SettingNames& names, std::string& value, bool& legacy) {
  if (MatchSetting(line, names.django, value) || MatchSetting(line, names.lower, value)) {
    legacy = false;
    return true;
  }
  if (std::string(names.legacy) != names.django && MatchSetting(line, names.legacy, value)) {
    legacy = true;
    return true;
  }
  return false;
}

bool TruthyValue(const std::string& value) {
  static const std::regex kTrue(R"(^\s*(True|true|1|["'](true|1|yes|on)["']))");
  // env('X', default=True) / os.environ.get('X', 'true'): the default decides what runs by default.
  static const std::regex kDefaultTrue(R"((default\s*=\s*|,\s*)(True|["'](true|1|yes|on)["'])\s*\))");
  return std::regex_search(value, kTrue) || std::regex_search(value, kDefaultTrue);
}

std::string Where(const std::string& rel, size_t line_index) { return rel + ":" + std::to_string(line_index + 1); }

std::string ModuleOf(const fs::path& rel) {
  fs::path p = rel;
  if (p.filename() == "celery.py" && p.has_parent_path())
    p = p.parent_path();  // `-A proj` finds proj.celery
  else
    p.replace_extension();
  std::string out;
  for (const auto& part : p) {
    if (!out.empty())
      out += '.';
    out += part.string();
  }
  return out;
}

}  // namespace

const char* BrokerKindName(BrokerKind kind) {
  switch (kind) {
    case BrokerKind::kRedis:
      return "redis";
    case BrokerKind::kAmqp:
      return "amqp";
    case BrokerKind::kSqs:
      return "sqs";
    case BrokerKind::kOther:
      return "other";
    case BrokerKind::kUnknown:
      break;
  }
  return "unknown";
}

ProjectInfo ScanProject(const std::string& dir) {
  ProjectInfo info;
  const fs::path root = fs::weakly_canonical(fs::path(dir));
  info.name = root.filename().string();
  std::vector<std::pair<std::string, FileKind>> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->is_directory(ec)) {
      if (SkippedDir(name) || it.depth() >= kMaxDepth - 1)
        it.disable_recursion_pending();
      continue;
    }
    FileKind kind;
    fs::path rel = fs::relative(it->path(), root, ec);
    if (it->is_regular_file(ec) && Classify(rel, kind))
      files.emplace_back(rel.generic_string(), kind);
  }
  std::sort(files.begin(), files.end());

  static const std::regex kApp(R"(Celery\(\s*['"]([^'"]+)['"])");
  static const std::regex kAppAnon(R"(=\s*Celery\()");
  static const std::regex kDjangoNs(
      R"(config_from_object\(\s*['"]django\.conf:settings['"].*namespace\s*=\s*['"]CELERY['"])");
  static const std::regex kConfigObject(R"(config_from_object\(\s*['"]([A-Za-z0-9_.]+)['"])");
  static const std::regex kEnvKey(R"(^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$)");
  static const std::regex kEventsFlag(R"((^|[\s"',\[])(-E|--events|--task-events)(\s|$|["',\]]))");
  bool legacy_seen = false;
  std::string config_object;
  BrokerKind literal_kind = BrokerKind::kUnknown, requirement_kind = BrokerKind::kUnknown,
             env_kind = BrokerKind::kUnknown;
  std::string literal_where, requirement_where, env_where;

  auto note = [](SettingSeen& s, const std::string& value, const std::string& where) {
    if (!s.where.empty())
      return;
    s.on = TruthyValue(value);
    s.where = where;
  };

  for (const auto& [rel, kind] : files) {
    const std::string text = ReadAll(root / rel);
    info.files_read.push_back(rel);
    if (kind != FileKind::kRequirements && kind != FileKind::kPyproject) {
      auto found = FindSecrets(rel, text);
      info.secrets.insert(info.secrets.end(), found.begin(), found.end());
    }
    const auto lines = Lines(text);
    for (size_t i = 0; i < lines.size(); ++i) {
      const std::string& line = lines[i];
      std::smatch m;
      switch (kind) {
        case FileKind::kPython: {
          if (line.find_first_not_of(" \t") != std::string::npos && line[line.find_first_not_of(" \t")] == '#')
            break;
          if (info.app_file.empty() && (std::regex_search(line, m, kApp) || std::regex_search(line, kAppAnon))) {
            info.app_name = (m.size() > 1 && m[1].matched) ? m[1].str() : "";
            info.app_file = rel;
            info.app_module = ModuleOf(rel);
            static const std::regex kVar(R"(^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*Celery\()");
            std::smatch v;
            if (std::regex_search(line, v, kVar))
              info.app_var = v[1].str();
            BrokerKind k = KindFromScheme(line);
            if (k != BrokerKind::kUnknown && info.broker == BrokerKind::kUnknown) {
              info.broker = k;
              info.broker_where = Where(rel, i) + " (Celery(broker=...))";
            }
          }
          if (std::regex_search(line, kDjangoNs))
            info.django = true;
          if (std::regex_search(line, m, kConfigObject) && m[1].str() != "django.conf")
            config_object = m[1].str();
          if (line.find("DJANGO_SETTINGS_MODULE") != std::string::npos)
            info.django = true;
          std::string value;
          bool legacy = false;
          if (MatchAny(line, kBroker, value, legacy)) {
            legacy_seen |= legacy && line.find("CELERY_BROKER_URL") == std::string::npos;
            BrokerKind k = KindFromScheme(value);
            if (k != BrokerKind::kUnknown && info.broker == BrokerKind::kUnknown) {
              info.broker = k;
              info.broker_where = Where(rel, i);
            }
            if (info.config_file.empty() || rel.find("settings") != std::string::npos)
              info.config_file = rel;
          }
          if (MatchAny(line, kTaskEvents, value, legacy))
            note(info.task_events, value, Where(rel, i)), legacy_seen |= legacy;
          if (MatchAny(line, kSentEvent, value, legacy))
            note(info.task_sent_event, value, Where(rel, i)), legacy_seen |= legacy;
          if (MatchAny(line, kQueueTtl, value, legacy))
            note(info.event_queue_ttl, value, Where(rel, i));
          if (MatchAny(line, kQueueExpires, value, legacy))
            note(info.event_queue_expires, value, Where(rel, i));
          if (MatchAny(line, kHijack, value, legacy))
            note(info.hijack_root_logger, value, Where(rel, i)), legacy_seen |= legacy;
          if (literal_kind == BrokerKind::kUnknown && (literal_kind = KindFromScheme(line)) != BrokerKind::kUnknown) {
            literal_where = Where(rel, i);
          }
          break;
        }
        case FileKind::kRequirements:
        case FileKind::kPyproject: {
          std::string l = line;
          std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
          if (l.find("django") != std::string::npos && l.find("django-") == std::string::npos)
            info.django = true;
          if (requirement_kind != BrokerKind::kUnknown)
            break;
          static const std::regex kRedisReq(R"((^|["'\s\[,])(redis|hiredis)([\]<>=~!;,\s"']|$)|celery\[[^\]]*redis)");
          static const std::regex kAmqpReq(
              R"((^|["'\s])(librabbitmq|amqp|pika)([<>=~!;,\s"']|$)|celery\[[^\]]*(librabbitmq|pyamqp))");
          static const std::regex kSqsReq(R"(celery\[[^\]]*sqs|(^|["'\s])(pycurl|boto3)([<>=~!;,\s"']|$))");
          if (std::regex_search(l, kRedisReq))
            requirement_kind = BrokerKind::kRedis;
          else if (std::regex_search(l, kAmqpReq))
            requirement_kind = BrokerKind::kAmqp;
          else if (std::regex_search(l, kSqsReq))
            requirement_kind = BrokerKind::kSqs;
          if (requirement_kind != BrokerKind::kUnknown)
            requirement_where = Where(rel, i) + " (requirement)";
          break;
        }
        case FileKind::kEnv: {
          info.has_env_file = true;
          if (!std::regex_match(line, m, kEnvKey))
            break;
          const std::string key = m[1].str();
          info.env_keys.push_back(key);
          if (env_kind == BrokerKind::kUnknown && (key.find("BROKER") != std::string::npos || key == "REDIS_URL" ||
                                                   key == "AMQP_URL" || key == "RABBITMQ_URL")) {
            env_kind = KindFromScheme(m[2].str());  // only the scheme is kept
            if (env_kind != BrokerKind::kUnknown)
              env_where = Where(rel, i) + " (" + key + ")";
          }
          if ((key == "CELERY_WORKER_SEND_TASK_EVENTS" || key == "WORKER_SEND_TASK_EVENTS") &&
              info.task_events.where.empty()) {
            note(info.task_events, m[2].str(), Where(rel, i));
          }
          break;
        }
        case FileKind::kScript: {
          if (line.find("celery") != std::string::npos && line.find("worker") != std::string::npos &&
              std::regex_search(line, kEventsFlag) && (info.task_events.where.empty() || !info.task_events.on)) {
            info.task_events.on = true;
            info.task_events.where = Where(rel, i) + " (worker -E)";
          }
          break;
        }
      }
    }
  }
  if (info.broker == BrokerKind::kUnknown) {
    for (auto [k, w] : {std::pair{env_kind, env_where}, std::pair{literal_kind, literal_where},
                        std::pair{requirement_kind, requirement_where}}) {
      if (k != BrokerKind::kUnknown) {
        info.broker = k;
        info.broker_where = w;
        break;
      }
    }
  }
  if (!config_object.empty()) {
    std::string path = config_object;
    std::replace(path.begin(), path.end(), '.', '/');
    path += ".py";
    if (std::find(info.files_read.begin(), info.files_read.end(), path) != info.files_read.end())
      info.config_file = path;
  }
  if (info.django) {
    info.style = SettingsStyle::kDjangoNamespace;
    for (const auto& f : info.files_read) {
      if (f.size() >= 11 && f.compare(f.size() - 11, 11, "settings.py") == 0) {
        info.config_file = f;
        break;
      }
    }
  } else if (legacy_seen) {
    info.style = SettingsStyle::kLegacyUppercase;
  }
  if (info.config_file.empty())
    info.config_file = info.app_file;
  std::sort(info.env_keys.begin(), info.env_keys.end());
  return info;
}

}  // namespace stalk
