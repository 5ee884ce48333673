// Stalk — Celery monitoring server.
// `stalk doctor`: checks a running Celery + Stalk setup end to end and prints a PASS/WARN/FAIL list
// with the fix for each problem: broker reachable, workers answer ping, events arrive (and from
// which workers), heartbeats fresh, clock skew, workers send task events, result backend reachable,
// store health, auth for a non-loopback bind. With --fix it switches task events on at the workers
// that do not send them (Celery's `enable_events` broadcast) and checks again.
#pragma once

#include <string>

namespace stalk {

struct DoctorOptions {
  std::string broker;                 // Celery broker URL
  std::string result_backend;         // "" : the broker (Stalk's default)
  std::string db = "stalk.db";        // the store Stalk uses (--db)
  std::string address = "127.0.0.1";  // the address Stalk binds (--address)
  std::string stalk_url;              // a running `stalk serve` to ask for /healthcheck; "" : not checked
  std::string global_keyprefix;
  std::string fanout_prefix = "/{db}.";
  double timeout = 10;  // seconds to watch the event stream (heartbeats come every 2 s)
  bool fix = false;
};

// Exit code: 0 no FAIL, 1 at least one FAIL, 2 bad arguments.
int RunDoctor(const DoctorOptions& options);

}  // namespace stalk
