// Stalk — Celery monitoring server.
// `stalk doctor` (see doctor_command.h): ping the workers, watch the event stream for the timeout,
// judge each worker from what it sent, then the checks that need no stream.
//
// Whether a worker sends task events cannot be asked (-E is not in its conf, and heartbeats carry
// no flag), so it is judged from the stream: task events from it → on; heartbeats whose `processed`
// counter grew (or `active` > 0) without any task event → off (FAIL); an idle worker → not known
// (WARN). --fix settles it either way: the reply to `enable_events` says "task events enabled" (they
// were off) or "already enabled".
#include "setup/doctor_command.h"

#include <cmath>
#include <cstdio>
#include <set>
#include <vector>

#include "control/redis_control_transport.h"
#include "setup/doctor_checks.h"
#include "setup/doctor_events.h"
#include "setup/stalk_probe.h"
#include "transport/broker_url.h"

namespace stalk {
namespace {

constexpr double kSkewWarnSeconds = 1.0;   // NTP keeps hosts well within this
constexpr double kSkewFailSeconds = 10.0;  // beyond this, timelines and runtimes are visibly wrong

std::string Join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string Fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Workers that answer a ping within a second (replies as Celery's `inspect ping`).
Result<std::set<std::string>> PingWorkers(RedisControlTransport& control) {
  ControlRequest ping{"ping"};
  ping.reply = true;
  auto replies = control.Broadcast(ping, CollectOptions{1000, 3000});
  if (!replies) return Error{replies.error()};
  std::set<std::string> names;
  for (const auto& r : *replies) names.insert(r.hostname);
  return names;
}

struct TaskEventVerdict {
  std::set<std::string> on, off, unknown;
};

TaskEventVerdict JudgeTaskEvents(const EventWatchResult& watch, const std::set<std::string>& workers) {
  TaskEventVerdict v;
  for (const auto& name : workers) {
    auto it = watch.workers.find(name);
    if (it == watch.workers.end()) {
      v.unknown.insert(name);
      continue;
    }
    const WorkerSeen& w = it->second;
    const bool busy = w.active_max > 0 || (w.processed_first >= 0 && w.processed_last > w.processed_first);
    if (w.task_events > 0) v.on.insert(name);
    else if (busy) v.off.insert(name);
    else v.unknown.insert(name);
  }
  return v;
}

}  // namespace

int RunDoctor(const DoctorOptions& o) {
  std::vector<Check> checks;
  auto url = ParseBrokerUrl(o.broker);
  std::printf("stalk doctor: broker %s, watching events for %s s%s\n\n",
              url ? url->Redacted().c_str() : "(invalid)", Fixed1(o.timeout).c_str(), o.fix ? ", --fix" : "");
  const int timeout_ms = 3000;
  auto print = [&](const Check& c) {
    std::fputs(FormatCheck(c).c_str(), stdout);
    std::fflush(stdout);
    checks.push_back(c);
  };

  if (!url) {
    print({"broker reachable", CheckStatus::kFail, "bad broker URL: " + url.error(),
           "pass --broker redis://host:6379/0 (or set CELERY_BROKER_URL)"});
  } else if (url->kind != BrokerUrl::Kind::kRedis) {
    print({"broker reachable", CheckStatus::kSkip,
           "not supported: this build follows Redis brokers only (" + url->Redacted() + ")", ""});
  } else {
    Check reach = CheckRedisReachable("broker reachable", o.broker, timeout_ms);
    print(reach);
    if (reach.status == CheckStatus::kPass) {
      RedisControlOptions copts;
      copts.global_keyprefix = o.global_keyprefix;
      copts.fanout_prefix = o.fanout_prefix;
      RedisControlTransport control(*url, copts);
      auto pinged = PingWorkers(control);
      std::set<std::string> pinged_names = pinged ? *pinged : std::set<std::string>{};
      if (!pinged) {
        print({"workers answer ping", CheckStatus::kFail, pinged.error(), "check the broker"});
      } else if (pinged_names.empty()) {
        print({"workers answer ping", CheckStatus::kFail, "no worker answered a ping within 1 s",
               "start a worker on this broker (celery -A proj worker -E); check that broker URL, db number and "
               "global_keyprefix match the workers'"});
      } else {
        print({"workers answer ping", CheckStatus::kPass, std::to_string(pinged_names.size()) + ": " + Join(pinged_names), ""});
      }

      EventWatchOptions wopts{o.global_keyprefix, o.fanout_prefix, o.timeout, timeout_ms};
      auto watch = WatchEvents(*url, wopts);
      if (!watch) {
        print({"events arrive", CheckStatus::kFail, watch.error(), "check the broker"});
      } else {
        std::set<std::string> workers = pinged_names;
        std::set<std::string> senders;
        for (const auto& [name, w] : watch->workers) {
          workers.insert(name);
          senders.insert(name);
        }
        const std::string window = Fixed1(o.timeout) + " s";
        if (watch->messages == 0) {
          print({"events arrive", CheckStatus::kFail, "no event in " + window + (pinged_names.empty() ? "" : " although workers answer ping"),
                 pinged_names.empty() ? "start workers; make sure Stalk and the workers use the same broker, db and "
                                        "global_keyprefix/fanout_prefix"
                                      : "workers started with --without-heartbeat and without -E send nothing: drop "
                                        "--without-heartbeat, start them with -E, or run with --fix"});
        } else {
          print({"events arrive", CheckStatus::kPass,
                 std::to_string(watch->messages) + " messages in " + window + " from " +
                     (senders.empty() ? std::string("clients only") : Join(senders)) +
                     (watch->undecodable ? " (" + std::to_string(watch->undecodable) + " undecodable)" : ""),
                 ""});
        }

        // Heartbeat freshness and clock skew, per worker.
        std::set<std::string> stale, fresh, skew_warn, skew_fail;
        double worst_skew = 0;
        for (const auto& name : workers) {
          auto it = watch->workers.find(name);
          const bool ok = it != watch->workers.end() && it->second.last_heartbeat > 0 && !it->second.offline &&
                          watch->ended - it->second.last_heartbeat <= 2 * it->second.freq + 0.5;
          (ok ? fresh : stale).insert(name);
          if (it != watch->workers.end()) {
            worst_skew = std::max(worst_skew, it->second.max_skew);
            if (it->second.max_skew > kSkewFailSeconds) skew_fail.insert(name);
            else if (it->second.max_skew > kSkewWarnSeconds) skew_warn.insert(name);
          }
        }
        if (workers.empty()) {
          print({"heartbeats fresh", CheckStatus::kSkip, "no worker seen", ""});
        } else if (!stale.empty()) {
          print({"heartbeats fresh", CheckStatus::kFail, "no recent heartbeat from " + Join(stale),
                 "workers must run without --without-heartbeat; Stalk marks a worker offline after 2 missed heartbeats"});
        } else {
          print({"heartbeats fresh", CheckStatus::kPass, "every " + std::to_string(fresh.size()) + " worker(s) within 2 x freq", ""});
        }
        if (senders.empty()) {
          print({"clock skew", CheckStatus::kSkip, "no worker event to compare", ""});
        } else if (!skew_fail.empty() || !skew_warn.empty()) {
          print({"clock skew", skew_fail.empty() ? CheckStatus::kWarn : CheckStatus::kFail,
                 "up to " + Fixed1(worst_skew) + " s between event timestamps and this host (" + Join(skew_fail.empty() ? skew_warn : skew_fail) + ")",
                 "run NTP (chrony/systemd-timesyncd) on the workers and on Stalk's host"});
        } else {
          print({"clock skew", CheckStatus::kPass, "at most " + Fixed1(worst_skew) + " s (incl. delivery)", ""});
        }

        // Task events.
        TaskEventVerdict v = JudgeTaskEvents(*watch, workers);
        const std::string settings_fix =
            "set worker_send_task_events = True (Django: CELERY_WORKER_SEND_TASK_EVENTS) or start workers with -E, so a "
            "restart keeps them on";
        if (workers.empty()) {
          print({"workers send task events", CheckStatus::kSkip, "no worker seen", ""});
        } else if (v.off.empty() && v.unknown.empty()) {
          print({"workers send task events", CheckStatus::kPass, "task events from " + Join(v.on), ""});
        } else if (!o.fix) {
          if (!v.off.empty()) {
            print({"workers send task events", CheckStatus::kFail,
                   "task events are off at " + Join(v.off) + ": they ran tasks but sent no task event",
                   "stalk doctor --fix (enable_events, until the worker restarts); " + settings_fix});
          } else {
            print({"workers send task events", CheckStatus::kWarn,
                   "not known for " + Join(v.unknown) + ": no task ran during the window",
                   "run a task during the check, or stalk doctor --fix (switches them on if they are off); " + settings_fix});
          }
        } else {
          std::set<std::string> targets = v.off;
          targets.insert(v.unknown.begin(), v.unknown.end());
          ControlRequest enable{"enable_events"};
          enable.reply = true;
          enable.destination.assign(targets.begin(), targets.end());
          auto replies = control.Broadcast(enable, CollectOptions{1000, 5000});
          std::set<std::string> switched, already, failed = targets;
          if (replies) {
            for (const auto& r : *replies) {
              const std::string ok = r.body.is_object() ? r.body.value("ok", "") : "";
              if (ok.find("already") != std::string::npos) already.insert(r.hostname);
              else if (!ok.empty()) switched.insert(r.hostname);
              else continue;
              failed.erase(r.hostname);
            }
          }
          if (!failed.empty()) {
            print({"workers send task events", CheckStatus::kFail,
                   "--fix: no reply to enable_events from " + Join(failed) +
                       (replies ? std::string() : " (" + replies.error() + ")"),
                   settings_fix});
          } else {
            std::string detail = "--fix: ";
            if (!switched.empty()) detail += "task events switched on at " + Join(switched);
            if (!already.empty()) detail += std::string(switched.empty() ? "" : "; ") + "already on at " + Join(already);
            std::string still_off;
            // Re-check: the stream should now carry task events from the busy workers.
            if (!v.off.empty()) {
              auto again = WatchEvents(*url, wopts);
              TaskEventVerdict v2 = again ? JudgeTaskEvents(*again, v.off) : TaskEventVerdict{};
              if (again && !v2.on.empty()) detail += "; re-check: task events now arrive from " + Join(v2.on);
              else if (again && !v2.off.empty()) still_off = Join(v2.off);
              else detail += "; re-check: no task ran, confirmed by the workers' replies";
            }
            if (!still_off.empty()) {
              print({"workers send task events", CheckStatus::kFail, detail + "; re-check: still none from " + still_off,
                     settings_fix});
            } else {
              print({"workers send task events", CheckStatus::kPass, detail, ""});
            }
            if (!switched.empty() && still_off.empty()) {
              std::printf("      note: enable_events lasts until the worker restarts; %s\n", settings_fix.c_str());
            }
          }
        }
      }
    }
  }
  if (url && url->kind == BrokerUrl::Kind::kRedis) {
    print(CheckResultBackend(o.result_backend, o.broker, timeout_ms));
  } else {
    print({"result backend reachable", CheckStatus::kSkip, "not checked (broker not supported)", ""});
  }
  print(CheckStalkServer(o.stalk_url, timeout_ms));
  print(CheckStore(o.db));
  print(CheckAuth(o.address));

  int pass = 0, warn = 0, fail = 0, skip = 0;
  for (const auto& c : checks) {
    (c.status == CheckStatus::kPass ? pass : c.status == CheckStatus::kWarn ? warn : c.status == CheckStatus::kFail ? fail : skip)++;
  }
  std::printf("\n%d PASS, %d WARN, %d FAIL, %d SKIP\n", pass, warn, fail, skip);
  return fail > 0 ? 1 : 0;
}

}  // namespace stalk
