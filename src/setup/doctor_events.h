// Stalk — Celery monitoring server.
// EventWatch: `stalk doctor`'s view of the event stream. Subscribes to Celery's event fanout on Redis
// (the same channels as RedisEventSource) for a fixed window and summarises it per worker: heartbeats
// (count, last arrival, freq, processed/active counters), task events, and the clock skew between the
// event's timestamp and the time it arrived here. It keeps no event, only these figures.
#pragma once

#include <map>
#include <string>

#include "common/result.h"
#include "transport/broker_url.h"

namespace stalk {

struct WorkerSeen {
  int heartbeats = 0;
  int worker_events = 0;      // worker-online/heartbeat/offline
  int task_events = 0;        // task-* events naming this hostname (task-sent excluded: clients send it)
  double last_heartbeat = 0;  // local time it arrived
  double freq = 2.0;          // heartbeat interval the worker announced
  long long processed_first = -1, processed_last = -1;  // heartbeat `processed` counters
  long long active_max = 0;
  double max_skew = 0;   // largest |arrival - event timestamp|, seconds
  bool offline = false;  // a worker-offline was seen
};

struct EventWatchResult {
  int messages = 0;  // envelopes received
  int undecodable = 0;
  int task_sent = 0;
  std::map<std::string, WorkerSeen> workers;  // by hostname
  double started = 0, ended = 0;              // local times of the window
};

struct EventWatchOptions {
  std::string global_keyprefix;
  std::string fanout_prefix = "/{db}.";
  double seconds = 10;
  int connect_timeout_ms = 3000;
};

// Watches for `options.seconds`. An error: the broker could not be reached or the subscription failed.
Result<EventWatchResult> WatchEvents(const BrokerUrl& url, const EventWatchOptions& options);

// Wall-clock seconds since the epoch (what Celery's timestamps use).
double EpochSecondsNow();

}  // namespace stalk
