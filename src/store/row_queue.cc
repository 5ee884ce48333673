// Stalk — Celery monitoring server.
#include "store/row_queue.h"

#include <algorithm>

namespace stalk {

RowQueue::RowQueue(size_t max_bytes, size_t wake_rows)
    : max_bytes_(max_bytes), wake_rows_(std::max<size_t>(1, wake_rows)) {}

bool RowQueue::Push(std::string_view row) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (closed_ || bytes_ + reserved_ + row.size() > max_bytes_) {
      return false;
    }
    if (chunks_.empty() || chunks_.back().bytes.size() + row.size() > kChunkBytes) {
      chunks_.emplace_back();
      if (!pool_.empty()) {
        chunks_.back().bytes = std::move(pool_.back());
        pool_.pop_back();
      }
      chunks_.back().bytes.reserve(std::max(kChunkBytes, row.size()));
    }
    Chunk& c = chunks_.back();
    c.bytes.append(row);
    ++c.rows;
    bytes_ += row.size();
    high_water_ = std::max(high_water_, bytes_ + reserved_);
    wake = ++rows_ == wake_rows_;
  }
  if (wake) {
    cv_.notify_one();
  }
  return true;
}

size_t RowQueue::Pop(std::vector<Chunk>& out, size_t max_rows, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return closed_ || rows_ >= wake_rows_; });
  size_t taken = 0;
  while (!chunks_.empty() && taken < max_rows) {
    Chunk& c = chunks_.front();
    taken += c.rows;
    rows_ -= c.rows;
    bytes_ -= c.bytes.size();
    out.push_back(std::move(c));
    chunks_.pop_front();
  }
  return taken;
}

void RowQueue::Recycle(std::vector<std::string>& buffers) {
  std::lock_guard lock(mu_);
  for (std::string& b : buffers) {
    if (pool_.size() < kPoolChunks && b.capacity() >= kChunkBytes && b.capacity() <= 2 * kChunkBytes) {
      b.clear();
      pool_.push_back(std::move(b));
    }
  }
  buffers.clear();
}

void RowQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

void RowQueue::SetReserved(size_t bytes) {
  std::lock_guard lock(mu_);
  reserved_ = bytes;
}

size_t RowQueue::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_ + reserved_;
}

size_t RowQueue::rows() const {
  std::lock_guard lock(mu_);
  return rows_;
}

size_t RowQueue::high_water_bytes() const {
  std::lock_guard lock(mu_);
  return high_water_;
}

bool RowQueue::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

}  // namespace stalk
