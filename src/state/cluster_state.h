// Stalk — Celery monitoring server.
// ClusterState: the live model of tasks and workers built from events, with Celery's merge rules
// (celery.events.state) and the corrections of celery-protocol.md §8:
//  - task-rejected ends a task REJECTED even after STARTED (Celery keeps STARTED forever);
//  - unfinished tasks of a worker that goes offline are flagged lost (with the time);
//  - worker liveness follows heartbeat expiry (freq x 2), checked by Tick();
//  - late events fill missing fields instead of overwriting newer ones; task-sent never moves a task
//    backwards; a stale task-retried (older than the current attempt) never regresses a task; a
//    task-received with more retries starts a new attempt; rejected without requeue is final;
//  - timestamps are kept as sent (epoch seconds), not shifted by the sender's utcoffset.
// Tasks live in a ring in creation order; past max_tasks the oldest is evicted (as Celery's LRU does
// in practice). Not thread-safe: SharedState (shared_state.h) adds the lock.
#pragma once

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <array>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/huge_pages.h"
#include "protocol/event.h"
#include "state/interner.h"
#include "state/state_listener.h"
#include "state/task.h"

namespace stalk {

struct TaskRecord;  // state/task_record.h
struct WorkerRecord;

struct StateOptions {
  size_t max_tasks = 100000;  // Flower's --max_tasks default
  size_t max_workers = 5000;  // Flower's --max_workers default
  // Longest kept args/kwargs/result/exception/eta/expires (bytes); traceback has its own limit.
  size_t max_field_bytes = 4096;
  size_t max_traceback_bytes = 16384;
  // Offline workers are forgotten this long after going offline; 0 = keep (Flower's default).
  double purge_offline_workers = 0;
};

struct StateCounters {
  uint64_t task_events = 0;
  uint64_t worker_events = 0;
  uint64_t other_events = 0;
  uint64_t tasks_created = 0;
  uint64_t tasks_evicted = 0;
  uint64_t workers_evicted = 0;
  uint64_t tasks_lost = 0;
  uint64_t fields_truncated = 0;
};

class ClusterState {
 public:
  explicit ClusterState(StateOptions options = {});
  ClusterState(const ClusterState&) = delete;
  ClusterState& operator=(const ClusterState&) = delete;

  // Applies one event received at `local_received` (receiver clock, epoch seconds).
  void Apply(const Event& ev, double local_received);
  // Re-evaluates worker liveness at `now`; flags lost tasks of workers that just went offline.
  void Tick(double now);

  void AddListener(StateListener* l) { listeners_.push_back(l); }

  // ---- restore from durable history (store/), on start-up before any event; no listener is called
  // Inserts a task as recorded. Restore oldest first: creation order stays timestamp order, and past
  // max_tasks the oldest is evicted as usual. A task already present is left alone (returns false).
  bool Restore(const TaskRecord& r);
  // Inserts or refreshes a worker as recorded (skipped if the live one heard from it later). Its
  // liveness is left to IsAlive/Tick: offline unless its last heartbeat is younger than 2 x freq.
  void RestoreWorker(const WorkerRecord& r);

  // ---- reads (callers hold the read lock) ----
  const Task* FindTask(std::string_view id) const;
  size_t task_count() const { return static_cast<size_t>(end_seq_ - base_seq_); }
  // Iterates tasks newest first; stop early by returning false.
  void ForEachTaskNewestFirst(const std::function<bool(const Task&)>& fn) const;
  const Task* TaskBySeq(uint64_t seq) const;
  std::vector<uint64_t> Children(const Task& t) const;

  const absl::flat_hash_map<uint32_t, Worker>& workers() const { return workers_; }
  const Worker* FindWorker(std::string_view hostname) const;
  bool IsAlive(const Worker& w, double now) const;

  std::string_view Name(uint32_t id) const { return strings_.Get(id); }
  uint32_t FindString(std::string_view s) const { return strings_.Find(s); }
  size_t StringCount() const { return strings_.size(); }
  std::string_view StateName(const Task& t) const;
  // Task names seen, sorted.
  std::vector<std::string_view> TaskTypes() const;
  // Queue names seen on task events (task-sent's `queue`), sorted.
  std::vector<std::string> QueueNames() const;
  const StateCounters& counters() const { return counters_; }
  const StateOptions& options() const { return options_; }
  // Bytes held by task records and their text fields (approximate; for /api/stalk/stats).
  size_t ApproxTaskBytes() const;

 private:
  Task* GetOrCreateTask(std::string_view id, bool& created);
  Worker& GetOrCreateWorker(std::string_view hostname, uint32_t& id);
  void ApplyTask(const Event& ev, double local_received);
  void ApplyWorker(const Event& ev, double local_received);
  void CopyFields(Task& t, const Event& ev, bool overwrite);
  bool SetText(CompactString& dst, const OptStr& src, bool overwrite, size_t limit);
  void TrackUnfinished(Task& t, uint32_t previous_worker);
  void MarkOffline(uint32_t worker_id, Worker& w, double when);
  void EvictOldest();
  void PurgeOfflineWorkers(double now);

  StateOptions options_;
  Interner strings_;  // task names, hostnames, queues, custom state names
  // Tasks by seq in fixed chunks of kChunkTasks: one allocation per 8192 tasks and no per-task
  // overhead (a std::deque of 256-byte elements allocates each one separately). 8192 tasks of 256
  // bytes are exactly one 2 MiB huge page (common/huge_pages.h).
  static constexpr unsigned kChunkBits = 13;
  static constexpr uint64_t kChunkTasks = uint64_t{1} << kChunkBits;
  Task& At(uint64_t seq) { return chunks_[(seq >> kChunkBits) - first_chunk_][seq & (kChunkTasks - 1)]; }
  const Task& At(uint64_t seq) const { return chunks_[(seq >> kChunkBits) - first_chunk_][seq & (kChunkTasks - 1)]; }
  bool Live(uint64_t seq) const { return seq >= base_seq_ && seq < end_seq_; }
  std::deque<HugeArray<Task>> chunks_;
  uint64_t first_chunk_ = 0;  // chunk number of chunks_.front()
  uint64_t base_seq_ = 0;     // oldest live task
  uint64_t end_seq_ = 0;      // next task's seq
  // uuid -> low 32 bits of the seq (20-byte slots instead of 24: 8 MB less at a million tasks);
  // SeqOf restores the full seq, exact while fewer than 2^32 tasks are live.
  absl::flat_hash_map<Uuid, uint32_t, absl::Hash<Uuid>, std::equal_to<Uuid>,
                      HugePageAllocator<std::pair<const Uuid, uint32_t>>>
      by_uuid_;
  uint64_t SeqOf(uint32_t low) const {
    return base_seq_ + static_cast<uint32_t>(low - static_cast<uint32_t>(base_seq_));
  }
  absl::flat_hash_map<std::string, uint64_t> by_text_;
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> children_;
  absl::flat_hash_map<std::string, std::vector<uint64_t>> pending_children_;  // by parent id
  absl::flat_hash_map<uint32_t, Worker> workers_;                             // by interned hostname
  absl::flat_hash_set<uint32_t> task_types_;
  absl::flat_hash_set<uint32_t> queues_;
  std::vector<StateListener*> listeners_;
  StateCounters counters_;
};

}  // namespace stalk
