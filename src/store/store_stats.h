// Stalk — Celery monitoring server.
// StoreStats: the store's counters, written by the ingest thread (queued/dropped) and the store
// thread (everything else), read by /metrics, /api/stalk/stats and /healthcheck. Relaxed atomics,
// each exact on its own; the last error text sits behind a small mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace stalk {

struct StoreStats {
  std::atomic<bool> healthy{false};          // open, and the last write or open attempt succeeded
  std::atomic<uint64_t> rows_queued{0};      // rows handed over by the ingest thread
  std::atomic<uint64_t> rows_dropped{0};     // refused because the queue was full (never blocks ingest)
  std::atomic<uint64_t> rows_rejected{0};    // refused by the database as invalid data (isolated, skipped)
  std::atomic<uint64_t> audit_committed{0};  // audit_log rows written
  std::atomic<uint64_t> audit_dropped{0};    // audit entries dropped: the store failed for too long
  std::atomic<uint64_t> queue_bytes{0};      // waiting + held for a retry
  std::atomic<uint64_t> queue_high_water_bytes{0};
  std::atomic<uint64_t> tasks_committed{0};  // task rows upserted (after coalescing) in committed batches
  std::atomic<uint64_t> transitions_committed{0};
  std::atomic<uint64_t> workers_committed{0};
  std::atomic<uint64_t> events_committed{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> errors{0};  // failed opens, writes and retention steps
  std::atomic<double> last_commit_at{0};
  std::atomic<double> last_batch_seconds{0};
  std::atomic<double> last_error_at{0};
  std::atomic<uint64_t> retention_tasks_deleted{0};
  std::atomic<uint64_t> retention_events_deleted{0};
  std::atomic<bool> restoring{false};       // start-up restore in progress (the API already serves)
  std::atomic<uint64_t> restored_tasks{0};  // grows chunk by chunk while restoring
  std::atomic<uint64_t> restored_workers{0};
  std::atomic<double> restore_seconds{0};

  void SetLastError(std::string e) {
    std::lock_guard lock(mu_);
    last_error_ = std::move(e);
  }
  std::string LastError() const {
    std::lock_guard lock(mu_);
    return last_error_;
  }

 private:
  mutable std::mutex mu_;
  std::string last_error_;
};

}  // namespace stalk
