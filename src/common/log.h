// Stalk — Celery monitoring server.
// Logging: one named spdlog logger per component (Logger("ingest")), and RateLimiter so a stream of bad
// input logs at most once a minute per reason — counters in /metrics carry the totals.
#pragma once

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace stalk {

// Returns the component's logger, creating it on first use (thread-safe).
std::shared_ptr<spdlog::logger> Logger(const std::string& component);

// Sets the level of every logger ("debug", "info", "warning", "error").
void SetLogLevel(const std::string& level);

// Allows one event per `interval`; lock-free, for hot paths.
class RateLimiter {
 public:
  RateLimiter() = default;
  explicit RateLimiter(std::chrono::seconds interval) : interval_(interval) {}
  bool Allow();

 private:
  std::chrono::seconds interval_{60};
  std::atomic<int64_t> next_ns_{0};
};

}  // namespace stalk
