// Stalk — Celery monitoring server.
// StoreWriter: keeps the durable history in step with the live state. As a StateListener it copies
// each changed task (and worker, and with store_events each event) into a bounded RowQueue on the
// ingest thread — a few hundred bytes appended to a buffer, never a wait on the database; when the
// queue is full the row is dropped and counted. Its own thread drains the queue in batches (up to
// `batch_rows` rows or every `flush_interval`), coalesces repeated updates of a task within a batch
// (the latest record is the merged whole) and commits each batch in one transaction.
//
// Failures (disk full, read-only file, database down, locked): the batch is kept and retried with
// exponential backoff after reconnecting, while new rows keep queueing up to the bound; the error is
// counted, logged at most once a minute, and reported by stats() (health, /metrics). Rows the
// database refuses as data (a constraint, a value too big) are isolated by splitting the batch and
// skipped, so one bad row cannot wedge the history. Retention (age and count) runs on the same
// thread in small steps between batches.
//
// Threads: On* callbacks on the ingest thread; everything else on the writer's thread, except
// Open/Restore (start-up, before Start) and stats()/store() (any thread).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/load_shed.h"
#include "common/log.h"
#include "common/result.h"
#include "state/state_listener.h"
#include "store/cost_rollup.h"
#include "store/row_queue.h"
#include "store/store.h"
#include "store/store_stats.h"

namespace stalk {

struct StoreWriterOptions {
  StoreConfig config;
  size_t queue_bytes = size_t{128} << 20;  // --store_queue_mb
  // Queued rows (one per event) taken per transaction; coalesced, 50,000 events of a busy cluster are
  // ~12,000 task upserts + their transitions. Large batches amortize the B-tree pages a commit
  // rewrites: store_bench measured the SQLite writer at 30k tasks per CPU-second with 5,000 rows,
  // 38k with 20,000 and 43k with 50,000. At low rates flush_interval decides, not this.
  size_t batch_rows = 50000;
  double flush_interval = 0.2;        // seconds a row may wait for its batch at low rates
  bool store_events = false;          // --store_events: also keep every event
  double retention_age = 0;           // seconds; 0 = keep (--retention)
  size_t max_stored_tasks = 0;        // 0 = unbounded (--max_stored_tasks)
  double retention_interval = 60;     // seconds between retention rounds
  size_t retention_step_rows = 1000;  // rows deleted per transaction: keeps each step short
  double retry_initial = 0.2;         // seconds, doubled after each failure ...
  double retry_max = 5;               // ... up to this
  double stop_timeout = 10;           // Stop() gives up writing the rest after this long when the database fails
  // Ingestion's load shedding (common/load_shed.h): while stage store_events is in force, event rows
  // are skipped and counted there. Null: never shed (tests, benchmarks).
  LoadShed* shed = nullptr;
};

class StoreWriter : public StateListener {
 public:
  explicit StoreWriter(StoreWriterOptions options);
  ~StoreWriter() override;
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Opens the store now (start-up). On failure the writer still works: its thread keeps trying with
  // backoff, rows queue up to the bound meanwhile, and stats() says why.
  Result<bool> Open();
  // Uses an already open store instead (tests, benchmarks).
  void UseStore(std::shared_ptr<Store> store);
  void Start();
  // Stops taking rows, writes what is queued (giving up after stop_timeout if the database keeps
  // failing, with a log line saying how many rows were lost), then joins.
  void Stop();
  // Blocks until every row queued before the call is committed, or `timeout_seconds` pass. For tests
  // and benchmarks.
  bool Flush(double timeout_seconds);

  // Queues a control action for the audit_log table (any thread). Written by the writer thread after
  // each loop; kept and retried while the store fails (bounded: the oldest are dropped past 10,000).
  void RecordAudit(const AuditEntry& entry);

  // Runs `op` on the writer thread, after the current batch (any thread may submit): rare writes of
  // other layers (alert silences) on the writer's connection. A failing op is kept and retried, in
  // order, after the next batch; past 1,000 waiting ops the oldest is dropped (counted as an error).
  using StoreOp = std::function<Result<bool>(Store&)>;
  void Submit(StoreOp op);

  // The open store, or null while it could not be opened. Safe from any thread (reads are).
  std::shared_ptr<Store> store() const;
  const StoreStats& stats() const { return stats_; }
  StoreStats& mutable_stats() { return stats_; }
  const StoreWriterOptions& options() const { return options_; }

  // ---- StateListener (ingest thread, under the state's write lock)
  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  void OnWorkerEvent(const ClusterState& state, const Worker& worker, const Event& ev) override;
  void OnWorkerOffline(const ClusterState& state, const Worker& worker, size_t lost) override;

 private:
  void Run();
  void Push();                         // scratch_ -> queue, counting a drop when full
  void PushEventRow(const Event& ev);  // --store_events: one row per event, unless shed
  // Writes the batch; on a data error splits it to isolate the refused rows. Returns rows rejected.
  Result<size_t> WriteWithSplit(Store& store, const WriteBatch& batch);
  void RetentionStep(Store& store);
  void RecordError(const std::string& what);
  void WaitFor(double seconds);  // wakes early on Stop
  void UpdateQueueStats();
  void WriteAudit(Store& store);
  void RunSubmitted(Store& store);

  StoreWriterOptions options_;
  StoreStats stats_;
  RowQueue queue_;
  std::string scratch_;  // ingest thread only
  mutable std::mutex store_mu_;
  std::shared_ptr<Store> store_;  // guarded by store_mu_ (set once, by Open or the writer thread)
  std::atomic<bool> stop_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<uint64_t> rows_done_{0};  // queued rows whose batch is committed (or given up)
  bool failing_ = false;                // writer thread: last attempt failed
  uint64_t failures_in_a_row_ = 0;      // writer thread
  RateLimiter error_log_{std::chrono::seconds(60)};
  RateLimiter drop_log_{std::chrono::seconds(60)};
  std::optional<double> retention_cutoff_;  // writer thread: the round in progress
  double next_retention_ = 0;
  std::mutex audit_mu_;
  std::vector<AuditEntry> audit_pending_;  // guarded by audit_mu_
  std::vector<StoreOp> ops_pending_;       // guarded by audit_mu_
  // Writer thread: after each committed batch, adds its finished tasks' worker time to cost_hourly
  // (nothing extra on the ingest path).
  CostRollup cost_rollup_;
  std::thread thread_;
};

}  // namespace stalk
