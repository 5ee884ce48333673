// Stalk — Celery monitoring server.
#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace stalk {
namespace {
std::mutex g_mu;
spdlog::level::level_enum g_level = spdlog::level::info;
}  // namespace

std::shared_ptr<spdlog::logger> Logger(const std::string& component) {
  std::lock_guard lock(g_mu);
  if (auto existing = spdlog::get(component)) {
    return existing;
  }
  auto logger = spdlog::stderr_color_mt(component);
  logger->set_level(g_level);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  return logger;
}

void SetLogLevel(const std::string& level) {
  std::lock_guard lock(g_mu);
  g_level = spdlog::level::from_str(level == "warning" ? "warn" : level);
  spdlog::set_level(g_level);
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

bool RateLimiter::Allow() {
  const int64_t now =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
  int64_t next = next_ns_.load(std::memory_order_relaxed);
  if (now < next) {
    return false;
  }
  const int64_t step = std::chrono::duration_cast<std::chrono::nanoseconds>(interval_).count();
  return next_ns_.compare_exchange_strong(next, now + step, std::memory_order_relaxed);
}

}  // namespace stalk
