// Stalk — Celery monitoring server.
// LoginLimiter: failed-login lockout. Keys are "ip:<addr>" and "user:<name>"; after `max_failures`
// failures within `window` seconds a key is locked for `lockout` seconds (the guard answers 429).
// The clock is injectable for tests. Memory is bounded: stale keys are dropped when the map grows.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace stalk {

struct LoginLimiterOptions {
  int max_failures = 10;
  double window_seconds = 300;
  double lockout_seconds = 300;
  size_t max_keys = 100000;
};

class LoginLimiter {
 public:
  using Clock = std::function<double()>;  // seconds, monotonic
  using Options = LoginLimiterOptions;

  explicit LoginLimiter(Options o = Options(), Clock clock = SteadySeconds);

  // Seconds left of the key's lockout, 0 when it is not locked. Counts a rejection when locked.
  double LockedFor(const std::string& key);
  void RecordFailure(const std::string& key);

  uint64_t failures() const { return failures_.load(std::memory_order_relaxed); }
  uint64_t lockouts() const { return lockouts_.load(std::memory_order_relaxed); }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }
  size_t tracked_keys();

  static double SteadySeconds();

 private:
  struct Entry {
    std::deque<double> failures;  // times of recent failures
    double locked_until = 0;
  };
  void PruneLocked(double now);

  Options opt_;
  Clock clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;
  std::atomic<uint64_t> failures_{0}, lockouts_{0}, rejected_{0};
};

}  // namespace stalk
