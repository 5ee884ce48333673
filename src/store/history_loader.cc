// Stalk — Celery monitoring server.
#include "store/history_loader.h"

#include <time.h>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/thread_name.h"
#include "state/task_record.h"

namespace stalk {
namespace {

// Chunks read ahead of the applier: bounds the memory of records in flight.
constexpr size_t kMaxChunksInFlight = 4;

// Single-producer single-consumer hand-off of record chunks, bounded; applied chunks come back for
// reuse, so their strings' buffers are reused rather than freed and reallocated.
class ChunkPipe {
 public:
  void Put(std::vector<TaskRecord>&& chunk) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return full_.size() < kMaxChunksInFlight; });
    full_.push_back(std::move(chunk));
    cv_.notify_all();
  }
  // An applied chunk to refill, or an empty vector.
  std::vector<TaskRecord> TakeFree() {
    std::lock_guard lock(mu_);
    if (free_.empty()) {
      return {};
    }
    std::vector<TaskRecord> out = std::move(free_.back());
    free_.pop_back();
    return out;
  }
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  // False when closed and empty.
  bool Take(std::vector<TaskRecord>& out) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !full_.empty(); });
    if (full_.empty()) {
      return false;
    }
    out = std::move(full_.front());
    full_.pop_front();
    cv_.notify_all();
    return true;
  }
  void Recycle(std::vector<TaskRecord>&& chunk) {
    std::lock_guard lock(mu_);
    free_.push_back(std::move(chunk));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::vector<TaskRecord>> full_;
  std::vector<std::vector<TaskRecord>> free_;
  bool closed_ = false;
};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

Result<RestoreSummary> RestoreState(Store& store, SharedState& state, size_t max_tasks,
                                    std::atomic<uint64_t>* progress) {
  const auto t0 = std::chrono::steady_clock::now();
  RestoreSummary out;
  auto workers = store.LoadWorkers();
  if (!workers) {
    return Error{"loading workers: " + workers.error()};
  }
  {
    auto w = state.Write();
    for (const auto& r : *workers) {
      w->RestoreWorker(r);
    }
  }
  out.workers = workers->size();
  if (max_tasks > 0) {
    ChunkPipe pipe;
    Result<size_t> read = size_t{0};
    const double apply_cpu0 = ThreadCpuSeconds();
    std::thread reader([&] {
      NameThisThread("stalk-restore");
      const double cpu0 = ThreadCpuSeconds();
      read = store.ForEachRecentTask(max_tasks, [&](std::vector<TaskRecord>& chunk) {
        pipe.Put(std::move(chunk));
        chunk = pipe.TakeFree();
      });
      out.read_cpu_seconds = ThreadCpuSeconds() - cpu0;
      pipe.Close();
    });
    std::vector<TaskRecord> chunk;
    while (pipe.Take(chunk)) {
      {
        auto w = state.Write();
        for (const auto& r : chunk) {
          w->Restore(r);
        }
      }
      if (progress) {
        progress->fetch_add(chunk.size(), std::memory_order_relaxed);
      }
      pipe.Recycle(std::move(chunk));
    }
    out.apply_cpu_seconds = ThreadCpuSeconds() - apply_cpu0;
    reader.join();
    if (!read) {
      return Error{"loading tasks: " + read.error()};
    }
    out.tasks = *read;
  }
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

}  // namespace stalk
