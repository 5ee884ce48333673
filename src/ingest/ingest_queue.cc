// Stalk — Celery monitoring server.
#include "ingest/ingest_queue.h"

#include <chrono>

namespace stalk {

bool IngestQueue::Push(RawMessage&& m) {
  const size_t size = m.payload.size() + sizeof(RawMessage);
  bool was_empty = false;
  {
    std::lock_guard lock(mu_);
    if (closed_ || bytes_ + size > max_bytes_) {
      stats_.queue_dropped.fetch_add(1, std::memory_order_relaxed);  // shed stage queue_full
      return false;
    }
    bytes_ += size;
    stats_.shed.Update(bytes_, max_bytes_);
    was_empty = q_.empty();
    q_.push_back(std::move(m));
    stats_.queue_bytes.store(bytes_, std::memory_order_relaxed);
    if (bytes_ > stats_.queue_high_water_bytes.load(std::memory_order_relaxed)) {
      stats_.queue_high_water_bytes.store(bytes_, std::memory_order_relaxed);
    }
  }
  // The writer waits only on an empty queue, so only the push that ends emptiness must wake it.
  if (was_empty) {
    cv_.notify_one();
  }
  return true;
}

bool IngestQueue::PopBatch(std::vector<RawMessage>& out, size_t max, int timeout_ms) {
  out.clear();
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return closed_ || !q_.empty(); });
  while (!q_.empty() && out.size() < max) {
    bytes_ -= q_.front().payload.size() + sizeof(RawMessage);
    out.push_back(std::move(q_.front()));
    q_.pop_front();
  }
  stats_.shed.Update(bytes_, max_bytes_);
  stats_.queue_bytes.store(bytes_, std::memory_order_relaxed);
  return !(closed_ && q_.empty() && out.empty());
}

void IngestQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

}  // namespace stalk
