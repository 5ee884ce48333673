// Stalk — Celery monitoring server.
// UnixSeconds: wall-clock time as Celery stamps it (float seconds since the epoch), for comparing with
// event timestamps and for what Stalk itself records.
#pragma once

#include <chrono>

namespace stalk {

inline double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace stalk
