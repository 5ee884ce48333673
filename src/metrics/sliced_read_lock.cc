// Stalk — Celery monitoring server.
#include "metrics/sliced_read_lock.h"

#include <algorithm>

namespace stalk {

SlicedReadLock::SlicedReadLock(SharedState& shared, double slice_seconds, FunctionRef<void()> before_acquire)
    : shared_(shared),
      budget_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(std::max(0.0, slice_seconds)))),
      before_acquire_(before_acquire) {
  Acquire();
}

void SlicedReadLock::Acquire() {
  if (lock_) {
    return;
  }
  before_acquire_();
  lock_.emplace(shared_);
  held_since_ = Clock::now();
  ++slices_;
}

void SlicedReadLock::Release() {
  if (!lock_) {
    return;
  }
  lock_.reset();
  const Clock::duration held = Clock::now() - held_since_;
  longest_ = std::max(longest_, held);
  over_1ms_ += held > std::chrono::milliseconds(1) ? 1 : 0;
}

}  // namespace stalk
