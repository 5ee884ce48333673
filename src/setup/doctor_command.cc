// Stalk — Celery monitoring server.
// `stalk doctor` (see doctor_command.h): ping the workers, watch the event stream for the timeout,
// judge each worker from what it sent, then the checks that need no stream.
//
// Whether a worker sends task events cannot be asked (-E is not in its conf, and heartbeats carry
// no flag), so it is judged from what it did during the window: task events from it → on; tasks
// processed (its `stats` total or its heartbeats' `processed` counter grew, or `active` > 0) without
// any task event → off (FAIL); an idle worker → not known (WARN). --fix settles it either way: the reply to
// `enable_events` says "task events enabled" (they were off) or "already enabled".
#include "setup/doctor_command.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "control/control_stack.h"
#include "setup/doctor_checks.h"
#include "setup/doctor_events.h"
#include "setup/stalk_probe.h"
#include "transport/broker_url.h"

namespace stalk {
namespace {

constexpr double kSkewWarnSeconds = 1.0;   // NTP keeps hosts well within this
constexpr double kSkewFailSeconds = 10.0;  // beyond this, timelines and runtimes are visibly wrong
constexpr int kCommandTimeoutMs = 3000;    // connect and single commands; the event window is --timeout

std::string Join(const std::set<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string Fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Workers that answer a ping within a second (replies as Celery's `inspect ping`).
Result<std::set<std::string>> PingWorkers(ControlTransport& control) {
  ControlRequest ping{"ping"};
  ping.reply = true;
  auto replies = control.Broadcast(ping, CollectOptions{1000, 3000});
  if (!replies)
    return Error{replies.error()};
  std::set<std::string> names;
  for (const auto& r : *replies)
    names.insert(r.hostname);
  return names;
}

struct TaskEventVerdict {
  std::set<std::string> on, off, unknown;
};

// Tasks each worker has processed so far: the sum of `total` in its `stats` reply (Celery's
// `inspect stats`). Read before and after the window, it shows which workers ran tasks even when
// only one heartbeat (whose `processed` counter says the same) arrived.
std::map<std::string, long long> ProcessedTotals(ControlTransport& control) {
  ControlRequest stats{"stats"};
  stats.reply = true;
  std::map<std::string, long long> out;
  auto replies = control.Broadcast(stats, CollectOptions{1000, 3000});
  if (!replies)
    return out;
  for (const auto& r : *replies) {
    long long sum = 0;
    if (r.body.is_object() && r.body.contains("total") && r.body["total"].is_object()) {
      for (const auto& [task, count] : r.body["total"].items()) {
        if (count.is_number_integer())
          sum += count.get<long long>();
      }
    }
    out[r.hostname] = sum;
  }
  return out;
}

// `ran`: workers known to have processed tasks during the window (from `stats`).
TaskEventVerdict JudgeTaskEvents(const EventWatchResult& watch, const std::set<std::string>& workers,
                                 const std::set<std::string>& ran = {}) {
  TaskEventVerdict v;
  for (const auto& name : workers) {
    auto it = watch.workers.find(name);
    if (it != watch.workers.end() && it->second.task_events > 0) {
      v.on.insert(name);
      continue;
    }
    bool busy = ran.count(name) > 0;
    if (it != watch.workers.end()) {
      const WorkerSeen& w = it->second;
      busy = busy || w.active_max > 0 || (w.processed_first >= 0 && w.processed_last > w.processed_first);
    }
    (busy ? v.off : v.unknown).insert(name);
  }
  return v;
}

std::set<std::string> Ran(const std::map<std::string, long long>& before,
                          const std::map<std::string, long long>& after) {
  std::set<std::string> out;
  for (const auto& [host, total] : after) {
    auto it = before.find(host);
    if (it != before.end() && total > it->second)
      out.insert(host);
  }
  return out;
}

constexpr const char* kSettingsFix =
    "set worker_send_task_events = True (Django: CELERY_WORKER_SEND_TASK_EVENTS) or start workers with -E, so a "
    "restart keeps them on";

Check PingCheck(const Result<std::set<std::string>>& pinged) {
  const std::string name = "workers answer ping";
  if (!pinged)
    return {name, CheckStatus::kFail, pinged.error(), "check the broker"};
  if (pinged->empty()) {
    return {name, CheckStatus::kFail, "no worker answered a ping within 1 s",
            "start a worker on this broker (celery -A proj worker -E); check that broker URL, db number and "
            "global_keyprefix match the workers'"};
  }
  return {name, CheckStatus::kPass, std::to_string(pinged->size()) + ": " + Join(*pinged), ""};
}

Check EventsCheck(const EventWatchResult& watch, const std::set<std::string>& pinged, double seconds) {
  const std::string name = "events arrive";
  const std::string window = Fixed1(seconds) + " s";
  if (watch.messages == 0) {
    return {name, CheckStatus::kFail, "no event in " + window + (pinged.empty() ? "" : " although workers answer ping"),
            pinged.empty() ? "start workers; make sure Stalk and the workers use the same broker, db and "
                             "global_keyprefix/fanout_prefix"
                           : "workers started with --without-heartbeat and without -E send nothing: drop "
                             "--without-heartbeat, start them with -E, or run with --fix"};
  }
  std::set<std::string> senders;
  for (const auto& [host, w] : watch.workers)
    senders.insert(host);
  return {name, CheckStatus::kPass,
          std::to_string(watch.messages) + " messages in " + window + " from " +
              (senders.empty() ? std::string("clients only") : Join(senders)) +
              (watch.undecodable ? " (" + std::to_string(watch.undecodable) + " undecodable)" : ""),
          ""};
}

Check HeartbeatCheck(const EventWatchResult& watch, const std::set<std::string>& workers) {
  const std::string name = "heartbeats fresh";
  if (workers.empty())
    return {name, CheckStatus::kSkip, "no worker seen", ""};
  std::set<std::string> stale;
  for (const auto& host : workers) {
    auto it = watch.workers.find(host);
    const bool ok = it != watch.workers.end() && it->second.last_heartbeat > 0 && !it->second.offline &&
                    watch.ended - it->second.last_heartbeat <= 2 * it->second.freq + 0.5;
    if (!ok)
      stale.insert(host);
  }
  if (!stale.empty()) {
    return {name, CheckStatus::kFail, "no recent heartbeat from " + Join(stale),
            "workers must run without --without-heartbeat; Stalk marks a worker offline after 2 missed heartbeats"};
  }
  return {name, CheckStatus::kPass, "every " + std::to_string(workers.size()) + " worker(s) within 2 x freq", ""};
}

Check SkewCheck(const EventWatchResult& watch) {
  const std::string name = "clock skew";
  if (watch.workers.empty())
    return {name, CheckStatus::kSkip, "no worker event to compare", ""};
  std::set<std::string> warn, fail;
  double worst = 0;
  for (const auto& [host, w] : watch.workers) {
    worst = std::max(worst, w.max_skew);
    if (w.max_skew > kSkewFailSeconds)
      fail.insert(host);
    else if (w.max_skew > kSkewWarnSeconds)
      warn.insert(host);
  }
  if (fail.empty() && warn.empty())
    return {name, CheckStatus::kPass, "at most " + Fixed1(worst) + " s (incl. delivery)", ""};
  return {
      name, fail.empty() ? CheckStatus::kWarn : CheckStatus::kFail,
      "up to " + Fixed1(worst) + " s between event timestamps and this host (" + Join(fail.empty() ? warn : fail) + ")",
      "run NTP (chrony/systemd-timesyncd) on the workers and on Stalk's host"};
}

// --fix: enable_events at `targets`, then (for workers that were busy without task events) watch
// the stream again. Sets `note` when the change lasts only until the workers restart.
Check FixTaskEvents(const TaskEventVerdict& v, ControlTransport& control, const BrokerUrl& url,
                    const EventWatchOptions& wopts, std::string& note) {
  const std::string name = "workers send task events";
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
      if (ok.empty())
        continue;
      (ok.find("already") != std::string::npos ? already : switched).insert(r.hostname);
      failed.erase(r.hostname);
    }
  }
  if (!failed.empty()) {
    return {name, CheckStatus::kFail,
            "--fix: no reply to enable_events from " + Join(failed) +
                (replies ? std::string() : " (" + replies.error() + ")"),
            kSettingsFix};
  }
  std::string detail = "--fix: ";
  if (!switched.empty())
    detail += "task events switched on at " + Join(switched);
  if (!already.empty())
    detail += std::string(switched.empty() ? "" : "; ") + "already on at " + Join(already);
  if (!v.off.empty()) {  // the busy workers' task events should now be on the stream
    const auto before = ProcessedTotals(control);
    auto again = WatchEvents(url, wopts);
    TaskEventVerdict v2 =
        again ? JudgeTaskEvents(*again, v.off, Ran(before, ProcessedTotals(control))) : TaskEventVerdict{};
    if (again && !v2.off.empty()) {
      return {name, CheckStatus::kFail, detail + "; re-check: still none from " + Join(v2.off), kSettingsFix};
    }
    detail += again && !v2.on.empty() ? "; re-check: task events now arrive from " + Join(v2.on)
                                      : "; re-check: no task ran, confirmed by the workers' replies";
  }
  if (!switched.empty())
    note = std::string("enable_events lasts until the worker restarts; ") + kSettingsFix;
  return {name, CheckStatus::kPass, detail, ""};
}

Check TaskEventsCheck(const TaskEventVerdict& v, bool workers_seen) {
  const std::string name = "workers send task events";
  if (!workers_seen)
    return {name, CheckStatus::kSkip, "no worker seen", ""};
  if (v.off.empty() && v.unknown.empty())
    return {name, CheckStatus::kPass, "task events from " + Join(v.on), ""};
  if (!v.off.empty()) {
    return {name, CheckStatus::kFail,
            "task events are off at " + Join(v.off) + ": they ran tasks but sent no task event",
            std::string("stalk doctor --fix (enable_events, until the worker restarts); ") + kSettingsFix};
  }
  return {name, CheckStatus::kWarn, "not known for " + Join(v.unknown) + ": no task ran during the window",
          std::string("run a task during the check, or stalk doctor --fix (switches them on if they are off); ") +
              kSettingsFix};
}

// Everything that needs the broker: ping, the event window, and the verdicts drawn from it.
void StreamChecks(const DoctorOptions& o, const BrokerUrl& url, const std::function<void(const Check&)>& print) {
  const int timeout_ms = kCommandTimeoutMs;
  std::unique_ptr<ControlTransport> transport = MakeControlTransport(url, o.global_keyprefix, o.fanout_prefix);
  ControlTransport& control = *transport;
  auto pinged = PingWorkers(control);
  print(PingCheck(pinged));
  const std::set<std::string> pinged_names = pinged ? *pinged : std::set<std::string>{};
  const EventWatchOptions wopts{o.global_keyprefix, o.fanout_prefix, o.timeout, timeout_ms};
  const auto totals_before = ProcessedTotals(control);
  auto watch = WatchEvents(url, wopts);
  if (!watch) {
    print({"events arrive", CheckStatus::kFail, watch.error(), "check the broker"});
  } else {
    std::set<std::string> workers = pinged_names;
    for (const auto& [host, w] : watch->workers)
      workers.insert(host);
    print(EventsCheck(*watch, pinged_names, o.timeout));
    print(HeartbeatCheck(*watch, workers));
    print(SkewCheck(*watch));
    const TaskEventVerdict v = JudgeTaskEvents(*watch, workers, Ran(totals_before, ProcessedTotals(control)));
    std::string note;
    const bool needs_fix = !workers.empty() && !(v.off.empty() && v.unknown.empty());
    print(o.fix && needs_fix ? FixTaskEvents(v, control, url, wopts, note) : TaskEventsCheck(v, !workers.empty()));
    if (!note.empty())
      std::printf("      note: %s\n", note.c_str());
  }
}

}  // namespace

int RunDoctor(const DoctorOptions& o) {
  std::vector<Check> checks;
  auto url = ParseBrokerUrl(o.broker);
  std::printf("stalk doctor: broker %s, watching events for %s s%s\n\n", url ? url->Redacted().c_str() : "(invalid)",
              Fixed1(o.timeout).c_str(), o.fix ? ", --fix" : "");
  const int timeout_ms = kCommandTimeoutMs;
  auto print = [&](const Check& c) {
    std::fputs(FormatCheck(c).c_str(), stdout);
    std::fflush(stdout);
    checks.push_back(c);
  };

  if (!url) {
    print({"broker reachable", CheckStatus::kFail, "bad broker URL: " + url.error(),
           "pass --broker redis://host:6379/0 (or set CELERY_BROKER_URL)"});
  } else if (url->kind != BrokerUrl::Kind::kRedis && url->kind != BrokerUrl::Kind::kAmqp) {
    print({"broker reachable", CheckStatus::kSkip,
           "not supported: this build follows Redis and RabbitMQ brokers only (" + url->Redacted() + ")", ""});
  } else {
    Check reach = url->kind == BrokerUrl::Kind::kAmqp ? CheckAmqpReachable("broker reachable", *url, timeout_ms)
                                                      : CheckRedisReachable("broker reachable", o.broker, timeout_ms);
    print(reach);
    if (reach.status == CheckStatus::kPass)
      StreamChecks(o, *url, print);
  }
  print(CheckResultBackend(o.result_backend, o.broker, timeout_ms));  // RabbitMQ + Redis backend is common
  print(CheckStalkServer(o.stalk_url, timeout_ms));
  print(CheckStore(o.db));
  print(CheckAuth(o.address));

  int pass = 0, warn = 0, fail = 0, skip = 0;
  for (const auto& c : checks) {
    (c.status == CheckStatus::kPass   ? pass
     : c.status == CheckStatus::kWarn ? warn
     : c.status == CheckStatus::kFail ? fail
                                      : skip)++;
  }
  std::printf("\n%d PASS, %d WARN, %d FAIL, %d SKIP\n", pass, warn, fail, skip);
  return fail > 0 ? 1 : 0;
}

}  // namespace stalk
