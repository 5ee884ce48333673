// Stalk — Celery monitoring server.
// SlicedReadLock: the state's read lock held in short slices, so a long reader (a /metrics render of
// a big cluster takes tens of ms) never pauses the ingest writer for longer than one slice. The
// reader calls Yield() between units of work; once the current hold is older than the slice budget,
// Yield releases the lock — a waiting writer goes first (SharedState prefers writers) — and takes it
// again. Between two holds anything may have changed: a caller keeps no pointer or reference into
// the state or into writer-owned data across a Yield, only indexes into containers that never
// shrink, and re-checks their size.
//
//   auto grow = [&] { out.reserve(out.size() + kSpare); };   // runs unlocked, before each hold
//   SlicedReadLock lock(shared, 0.0003, grow);
//   for (size_t i = 0; i < items.size(); ++i) {   // items only grow
//     lock.Yield();
//     Use(items[i], lock.state());
//   }
//
// Not thread-safe itself: one per reader thread.
#pragma once

#include <chrono>
#include <optional>

#include "common/function_ref.h"
#include "state/shared_state.h"

namespace stalk {

class SlicedReadLock {
 public:
  // Takes the read lock. `slice_seconds`: longest hold before Yield lets a writer in (0 = every
  // Yield that checks the clock releases). `before_acquire`: runs unlocked before every hold,
  // the first included (growing an output buffer there keeps the copy out of the lock); it must
  // outlive this object.
  SlicedReadLock(SharedState& shared, double slice_seconds, FunctionRef<void()> before_acquire);
  ~SlicedReadLock() { Release(); }
  SlicedReadLock(const SlicedReadLock&) = delete;
  SlicedReadLock& operator=(const SlicedReadLock&) = delete;

  // The state; only while held.
  const ClusterState& state() const { return **lock_; }

  // A point between two units of work: releases and re-takes the lock when the hold has lasted
  // the slice budget. The clock is read every kCheckEvery calls (a unit is one series: 0.1-2 µs).
  // Returns true when the lock was released (and is held again).
  bool Yield() {
    if (--countdown_ > 0) {
      return false;
    }
    countdown_ = kCheckEvery;
    if (Clock::now() - held_since_ < budget_) {
      return false;
    }
    Release();
    Acquire();
    return true;
  }
  // Explicit release / re-take around work that needs no state (sorting, formatting copies).
  // Both are no-ops when already in that state.
  void Release();
  void Acquire();

  size_t slices() const { return slices_; }
  // Longest hold so far, seconds (the longest a writer could have waited on this reader).
  double longest_hold_seconds() const { return std::chrono::duration<double>(longest_).count(); }
  // Holds longer than 1 ms: a unit of work larger than the budget, or the thread preempted.
  size_t holds_over_1ms() const { return over_1ms_; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr int kCheckEvery = 4;

  SharedState& shared_;
  std::optional<SharedState::ReadLock> lock_;
  Clock::duration budget_;
  FunctionRef<void()> before_acquire_;
  Clock::time_point held_since_{};
  Clock::duration longest_{};
  size_t slices_ = 0;
  size_t over_1ms_ = 0;
  int countdown_ = kCheckEvery;
};

}  // namespace stalk
