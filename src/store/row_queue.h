// Stalk — Celery monitoring server.
// RowQueue: the bounded hand-off between the ingest thread (producer, one encoded row at a time, see
// row_codec.h) and the store thread (consumer, whole chunks at a time). Rows are appended to 256 KiB
// chunks, so a push is a lock and a copy into a buffer that already has room, and the consumer takes
// thousands of rows per lock. Bounded by bytes: when a row does not fit, Push refuses it (the caller
// counts a drop) — ingestion never waits for the database. Bytes the consumer holds for a retry are
// reserved against the same bound (SetReserved), so a failing database cannot make the total grow.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

class RowQueue {
 public:
  struct Chunk {
    std::string bytes;
    size_t rows = 0;
  };

  // `wake_rows`: a consumer waiting in Pop wakes as soon as this many rows are queued.
  RowQueue(size_t max_bytes, size_t wake_rows);

  // Appends one encoded row; false when it does not fit (nothing appended) or the queue is closed.
  bool Push(std::string_view row);
  // Waits until `wake_rows` rows are queued, the queue is closed, or `wait` passes; then moves whole
  // chunks into `out` until at least `max_rows` rows are taken or the queue is empty. Returns rows.
  size_t Pop(std::vector<Chunk>& out, size_t max_rows, std::chrono::milliseconds wait);
  // Gives popped chunks back once decoded: their buffers are reused by Push (up to kPoolChunks), so
  // steady-state pushes touch warm memory instead of faulting in fresh pages.
  void Recycle(std::vector<std::string>& buffers);
  // No more pushes; wakes the consumer. Queued rows can still be popped.
  void Close();

  void SetReserved(size_t bytes);
  size_t bytes() const;
  size_t rows() const;
  size_t high_water_bytes() const;
  bool closed() const;

 private:
  static constexpr size_t kChunkBytes = 256 << 10;
  static constexpr size_t kPoolChunks = 32;  // 8 MiB of warm buffers at most

  const size_t max_bytes_;
  const size_t wake_rows_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> chunks_;       // guarded by mu_
  std::vector<std::string> pool_;  // guarded by mu_: empty buffers with capacity
  size_t bytes_ = 0;               // guarded by mu_
  size_t rows_ = 0;                // guarded by mu_
  size_t reserved_ = 0;            // guarded by mu_
  size_t high_water_ = 0;          // guarded by mu_
  bool closed_ = false;            // guarded by mu_
};

}  // namespace stalk
