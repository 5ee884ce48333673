// Stalk — Celery monitoring server.
#include "control/result_backend_probe.h"

#include <chrono>

#include "common/log.h"
#include "control/redis_result_backend.h"

namespace stalk {

ResultBackendProbe::ResultBackendProbe(RedisResultBackend& backend, double interval_seconds)
    : backend_(backend), interval_(interval_seconds) {}

ResultBackendProbe::~ResultBackendProbe() { Stop(); }

void ResultBackendProbe::Start() {
  thread_ = std::thread([this] {
    RateLimiter log_limit{std::chrono::seconds(60)};
    bool was_up = true;
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      auto r = backend_.Ping();
      if (!r && (was_up || log_limit.Allow())) {
        Logger("control")->warn("result backend unreachable: {} (stalk_result_backend_up 0)", r.error());
      } else if (r && !was_up) {
        Logger("control")->info("result backend reachable again");
      }
      was_up = static_cast<bool>(r);
      lock.lock();
      cv_.wait_for(lock, std::chrono::duration<double>(interval_), [this] { return stop_; });
    }
  });
}

void ResultBackendProbe::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

}  // namespace stalk
