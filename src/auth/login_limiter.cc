// Stalk — Celery monitoring server.
#include "auth/login_limiter.h"

#include <chrono>

namespace stalk {

LoginLimiter::LoginLimiter(Options o, Clock clock) : opt_(o), clock_(std::move(clock)) {}

double LoginLimiter::SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double LoginLimiter::LockedFor(const std::string& key) {
  const double now = clock_();
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.locked_until <= now) {
    return 0;
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  return it->second.locked_until - now;
}

void LoginLimiter::RecordFailure(const std::string& key) {
  failures_.fetch_add(1, std::memory_order_relaxed);
  const double now = clock_();
  std::lock_guard lock(mu_);
  if (entries_.size() >= opt_.max_keys && entries_.find(key) == entries_.end()) {
    PruneLocked(now);
  }
  Entry& e = entries_[key];
  while (!e.failures.empty() && e.failures.front() <= now - opt_.window_seconds) {
    e.failures.pop_front();
  }
  e.failures.push_back(now);
  if (static_cast<int>(e.failures.size()) >= opt_.max_failures && e.locked_until <= now) {
    e.locked_until = now + opt_.lockout_seconds;
    e.failures.clear();
    lockouts_.fetch_add(1, std::memory_order_relaxed);
  }
}

size_t LoginLimiter::tracked_keys() {
  std::lock_guard lock(mu_);
  return entries_.size();
}

void LoginLimiter::PruneLocked(double now) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    const bool recent = !it->second.failures.empty() && it->second.failures.back() > now - opt_.window_seconds;
    if (!recent && it->second.locked_until <= now) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  if (entries_.size() >= opt_.max_keys) {
    entries_.clear();  // a flood of distinct keys: forget them rather than grow without bound
  }
}

}  // namespace stalk
