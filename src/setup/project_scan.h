// Stalk — Celery monitoring server.
// ProjectScan: what `stalk init` learns from a Celery project by reading its files, never by running
// them: the Celery app (`Celery('name'`) and its module, Django-style settings, the broker kind (from
// broker settings, URL schemes and requirements), whether task events are switched on (settings or
// `-E` on a worker command line), which related settings are present, and real-looking secrets.
// Values from `.env` are never kept: only its keys and its broker URL's scheme are read.
#pragma once

#include <string>
#include <vector>

#include "setup/secret_scan.h"

namespace stalk {

enum class BrokerKind { kUnknown, kRedis, kAmqp, kSqs, kOther };
const char* BrokerKindName(BrokerKind kind);  // "redis", "amqp", "sqs", "other", "unknown"

// How the project names Celery settings, which decides the lines init asks to add.
enum class SettingsStyle {
  kLowercase,        // celeryconfig.py / app.conf: worker_send_task_events = True
  kDjangoNamespace,  // Django settings with namespace='CELERY': CELERY_WORKER_SEND_TASK_EVENTS = True
  kLegacyUppercase,  // Celery 3 names: CELERY_SEND_EVENTS = True
};

// One Celery setting and where the project sets it ("" when it does not).
struct SettingSeen {
  bool on = false;    // the value read as true (for booleans)
  std::string where;  // "proj/settings.py:14"
};

struct ProjectInfo {
  std::string name;             // the project folder's name
  std::string app_name;         // Celery('name'); "" when not found
  std::string app_module;       // what to pass to `celery -A` (e.g. "proj"); "" when not found
  std::string app_file;         // the file that creates the app
  std::string app_var = "app";  // the variable holding it (app = Celery(...))
  std::string config_file;      // where Celery settings live (settings.py, celeryconfig.py, celery.py)
  bool django = false;
  SettingsStyle style = SettingsStyle::kLowercase;
  BrokerKind broker = BrokerKind::kUnknown;
  std::string broker_where;     // where the broker kind was learnt
  SettingSeen task_events;      // worker_send_task_events or -E
  SettingSeen task_sent_event;  // task_send_sent_event
  SettingSeen event_queue_ttl;
  SettingSeen event_queue_expires;
  SettingSeen hijack_root_logger;
  bool has_env_file = false;
  std::vector<std::string> env_keys;    // keys of .env (never values)
  std::vector<std::string> files_read;  // relative paths, sorted
  std::vector<SecretFinding> secrets;   // real-looking secrets in the files read
};

// Reads the project under `dir`. Unreadable files are skipped; the result is never an error.
ProjectInfo ScanProject(const std::string& dir);

}  // namespace stalk
