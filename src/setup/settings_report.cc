// Stalk — Celery monitoring server.
// The settings report of `stalk init`: for each Celery setting monitoring depends on, whether the
// project sets it (and where), and the exact lines to add, spelled the way the project spells its
// settings (lowercase, Django's CELERY_ namespace, or Celery 3's uppercase names).
#include <sstream>

#include "setup/init_templates.h"

namespace stalk {

std::string RenderSettingsReport(const ProjectInfo& info, InitProfile p) {
  (void)p;
  struct Wanted {
    const char* lower;
    const char* django;
    const char* legacy;
    const char* value;
    const SettingSeen* seen;
    bool want_on;  // the value init wants is a true boolean (else: present at all)
    bool relevant;
    const char* why;
  };
  const bool amqp = info.broker == BrokerKind::kAmqp;
  const Wanted wanted[] = {
      {"worker_send_task_events", "CELERY_WORKER_SEND_TASK_EVENTS", "CELERY_SEND_EVENTS", "True", &info.task_events,
       true, true, "without it workers send no task events: Stalk sees workers but no tasks"},
      {"task_send_sent_event", "CELERY_TASK_SEND_SENT_EVENT", "CELERY_SEND_TASK_SENT_EVENT", "True",
       &info.task_sent_event, true, true, "task-sent events show tasks while they wait in the queue (and their queue)"},
      {"event_queue_ttl", "CELERY_EVENT_QUEUE_TTL", "CELERY_EVENT_QUEUE_TTL", "5.0", &info.event_queue_ttl, false, amqp,
       "RabbitMQ: events nobody reads expire instead of piling up in the monitor's queue"},
      {"event_queue_expires", "CELERY_EVENT_QUEUE_EXPIRES", "CELERY_EVENT_QUEUE_EXPIRES", "60.0",
       &info.event_queue_expires, false, amqp,
       "RabbitMQ: a monitor's event queue is deleted a minute after it goes away"},
      {"worker_hijack_root_logger", "CELERY_WORKER_HIJACK_ROOT_LOGGER", "CELERYD_HIJACK_ROOT_LOGGER", "False",
       &info.hijack_root_logger, false, info.django, "Django: keep Django's LOGGING config for the worker's logs"},
  };
  std::ostringstream out;
  std::string target = info.config_file.empty() ? "your Celery configuration" : info.config_file;
  const bool on_app = !info.django && info.config_file == info.app_file && !info.app_file.empty() &&
                      info.style == SettingsStyle::kLowercase;
  out << "Celery settings (" << target;
  if (info.style == SettingsStyle::kDjangoNamespace)
    out << ", Django settings with namespace='CELERY'";
  if (info.style == SettingsStyle::kLegacyUppercase)
    out << ", Celery 3 uppercase names";
  out << "):\n";
  std::vector<std::string> lines;
  for (const Wanted& w : wanted) {
    if (!w.relevant)
      continue;
    const char* name = info.style == SettingsStyle::kDjangoNamespace   ? w.django
                       : info.style == SettingsStyle::kLegacyUppercase ? w.legacy
                                                                       : w.lower;
    const bool ok = !w.seen->where.empty() && (!w.want_on || w.seen->on);
    if (ok) {
      out << "  ok      " << w.lower << " (" << w.seen->where << ")\n";
      continue;
    }
    out << "  change  " << w.lower << ": " << (w.seen->where.empty() ? "not set" : "set off at " + w.seen->where)
        << " (" << w.why << ")\n";
    lines.push_back(std::string(on_app ? info.app_var + ".conf." : "") + name + " = " + w.value);
  }
  if (lines.empty()) {
    out << "Nothing to change.\n";
  } else {
    out << "Add to " << target << ":\n";
    for (const auto& l : lines)
      out << "    " << l << "\n";
    if (info.task_events.where.empty() || !info.task_events.on) {
      out << "(or start workers with -E: celery -A " << (info.app_module.empty() ? "proj" : info.app_module)
          << " worker -E; a running worker can be switched with `stalk doctor --fix`)\n";
    }
  }
  if (info.broker == BrokerKind::kAmqp || info.broker == BrokerKind::kSqs) {
    out << "Note: this Stalk build follows events over Redis; " << BrokerKindName(info.broker)
        << " brokers are not supported yet (stalk doctor reports them as such).\n";
  }
  return out.str();
}

}  // namespace stalk
