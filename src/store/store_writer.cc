// Stalk — Celery monitoring server.
#include "store/store_writer.h"

#include <algorithm>
#include <chrono>

#include "common/clock.h"
#include "common/thread_name.h"
#include "state/cluster_state.h"
#include "store/row_codec.h"

namespace stalk {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// Splits `b` in two by row count (rows taken in table order: tasks, transitions, workers, events), so
// each half is strictly smaller than a batch of two rows or more.
std::pair<WriteBatch, WriteBatch> Halves(const WriteBatch& b) {
  std::pair<WriteBatch, WriteBatch> out;
  size_t first = (b.rows() + 1) / 2;  // rows still going to the first half
  auto split = [&first](const auto& v, auto& a, auto& c) {
    const size_t n = std::min(first, v.size());
    a.assign(v.begin(), v.begin() + static_cast<long>(n));
    c.assign(v.begin() + static_cast<long>(n), v.end());
    first -= n;
  };
  split(b.tasks, out.first.tasks, out.second.tasks);
  split(b.transitions, out.first.transitions, out.second.transitions);
  split(b.workers, out.first.workers, out.second.workers);
  split(b.events, out.first.events, out.second.events);
  out.first.written_at = out.second.written_at = b.written_at;
  return out;
}

}  // namespace

StoreWriter::StoreWriter(StoreWriterOptions options)
    : options_(std::move(options)),
      queue_(options_.queue_bytes, options_.batch_rows),
      cost_rollup_(options_.retention_age) {
  scratch_.reserve(4096);
}

StoreWriter::~StoreWriter() { Stop(); }

Result<bool> StoreWriter::Open() {
  auto s = OpenStore(options_.config);
  if (!s) {
    RecordError("cannot open the store: " + s.error());
    return Error{s.error()};
  }
  std::lock_guard lock(store_mu_);
  store_ = std::move(*s);
  stats_.healthy = true;
  return true;
}

void StoreWriter::UseStore(std::shared_ptr<Store> store) {
  std::lock_guard lock(store_mu_);
  store_ = std::move(store);
  stats_.healthy = store_ != nullptr;
}

std::shared_ptr<Store> StoreWriter::store() const {
  std::lock_guard lock(store_mu_);
  return store_;
}

void StoreWriter::Start() {
  next_retention_ = UnixSeconds() + std::min(options_.retention_interval, 10.0);
  thread_ = std::thread([this] {
    NameThisThread("stalk-store");
    Run();
  });
}

void StoreWriter::Stop() {
  stop_ = true;
  queue_.Close();
  wait_cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

bool StoreWriter::Flush(double timeout_seconds) {
  const uint64_t target = stats_.rows_queued.load();
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(timeout_seconds);
  while (rows_done_.load() < target) {
    if (SteadyClock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// ------------------------------------------------------------------ ingest side

void StoreWriter::Push() {
  if (queue_.Push(scratch_)) {
    stats_.rows_queued.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (queue_.closed()) {
    return;
  }
  stats_.rows_dropped.fetch_add(1, std::memory_order_relaxed);
  if (drop_log_.Allow()) {
    Logger("store")->warn(
        "store queue full ({} MiB): dropping history rows (counted in stalk_store_dropped_total); "
        "the database is failing or slower than ingestion — raise --store_queue_mb or check it",
        options_.queue_bytes >> 20);
  }
}

void StoreWriter::PushEventRow(const Event& ev) {
  if (!options_.store_events) {
    return;
  }
  if (options_.shed && options_.shed->Sheds(ShedStage::kStoreEvents)) {
    options_.shed->Count(ShedStage::kStoreEvents);  // the first thing given up when ingestion lags
    return;
  }
  scratch_.clear();
  EncodeEventRow(ev, UnixSeconds(), scratch_);
  Push();
}

void StoreWriter::OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) {
  // A state the task took: any change, and the first PENDING from task-sent.
  const bool transition = task.state != previous ||
                          (ev.kind == EventKind::kTaskSent && !task.has_state_event && task.sent == task.timestamp);
  scratch_.clear();
  EncodeTaskRow(state, task, transition, scratch_);
  Push();
  PushEventRow(ev);
}

void StoreWriter::OnWorkerEvent(const ClusterState& /*state*/, const Worker& worker, const Event& ev) {
  scratch_.clear();
  EncodeWorkerRow(worker, scratch_);
  Push();
  PushEventRow(ev);
}

void StoreWriter::OnWorkerOffline(const ClusterState& state, const Worker& worker, size_t lost) {
  scratch_.clear();
  EncodeWorkerRow(worker, scratch_);
  Push();
  if (lost == 0) {
    return;
  }
  for (uint64_t seq : worker.unfinished) {  // the tasks just flagged lost
    if (const Task* t = state.TaskBySeq(seq); t && t->lost) {
      scratch_.clear();
      EncodeTaskRow(state, *t, /*transition=*/false, scratch_);
      Push();
    }
  }
}

// ------------------------------------------------------------------ store thread

void StoreWriter::RecordError(const std::string& what) {
  stats_.errors.fetch_add(1, std::memory_order_relaxed);
  stats_.last_error_at = UnixSeconds();
  stats_.SetLastError(what);
  stats_.healthy = false;
  if (error_log_.Allow()) {
    Logger("store")->error(
        "{} — keeping the rows and retrying (errors are counted in stalk_store_errors_total; "
        "logged at most once a minute)",
        what);
  }
}

void StoreWriter::WaitFor(double seconds) {
  std::unique_lock lock(wait_mu_);
  wait_cv_.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return stop_.load(); });
}

void StoreWriter::UpdateQueueStats() {
  stats_.queue_bytes = queue_.bytes();
  stats_.queue_high_water_bytes = queue_.high_water_bytes();
}

Result<size_t> StoreWriter::WriteWithSplit(Store& store, const WriteBatch& batch) {
  auto r = store.Write(batch);
  if (r) {
    return size_t{0};
  }
  if (!store.LastWriteErrorIsPermanent()) {
    return Error{r.error()};
  }
  if (batch.rows() <= 1) {
    stats_.rows_rejected.fetch_add(1, std::memory_order_relaxed);
    Logger("store")->warn("the database refused a history row, skipped: {}", r.error());
    return size_t{1};
  }
  auto [a, b] = Halves(batch);
  auto ra = WriteWithSplit(store, a);
  if (!ra) {
    return ra;
  }
  auto rb = WriteWithSplit(store, b);
  if (!rb) {
    return rb;
  }
  return *ra + *rb;
}

void StoreWriter::RetentionStep(Store& store) {
  const double now = UnixSeconds();
  if (!retention_cutoff_) {
    double cutoff = options_.retention_age > 0 ? now - options_.retention_age : 0;
    if (options_.max_stored_tasks > 0) {
      auto nth = store.NthNewestTimestamp(options_.max_stored_tasks);
      if (!nth) {
        RecordError("retention: " + nth.error());
        next_retention_ = now + options_.retention_interval;
        return;
      }
      if (*nth) {
        cutoff = std::max(cutoff, **nth);
      }
    }
    if (cutoff <= 0) {
      next_retention_ = now + options_.retention_interval;
      return;
    }
    retention_cutoff_ = cutoff;
  }
  auto step = store.DeleteOlderThan(*retention_cutoff_, options_.retention_step_rows);
  if (!step) {
    RecordError("retention: " + step.error());
    retention_cutoff_.reset();
    next_retention_ = now + options_.retention_interval;
    return;
  }
  stats_.retention_tasks_deleted.fetch_add(step->tasks, std::memory_order_relaxed);
  stats_.retention_events_deleted.fetch_add(step->events, std::memory_order_relaxed);
  if (!step->more) {
    retention_cutoff_.reset();
    next_retention_ = now + options_.retention_interval;
  }
}

void StoreWriter::RecordAudit(const AuditEntry& entry) {
  std::lock_guard lock(audit_mu_);
  if (audit_pending_.size() >= 10000) {
    audit_pending_.erase(audit_pending_.begin());
    stats_.audit_dropped.fetch_add(1, std::memory_order_relaxed);
  }
  audit_pending_.push_back(entry);
}

void StoreWriter::WriteAudit(Store& store) {
  std::vector<AuditEntry> entries;
  {
    std::lock_guard lock(audit_mu_);
    entries.swap(audit_pending_);
  }
  if (entries.empty()) {
    return;
  }
  if (auto r = store.AppendAudit(entries); !r) {
    RecordError("writing the audit log: " + r.error());
    std::lock_guard lock(audit_mu_);
    audit_pending_.insert(audit_pending_.begin(), entries.begin(), entries.end());
    return;
  }
  stats_.audit_committed.fetch_add(entries.size(), std::memory_order_relaxed);
}

void StoreWriter::Submit(StoreOp op) {
  std::lock_guard lock(audit_mu_);
  if (ops_pending_.size() >= 1000) {
    ops_pending_.erase(ops_pending_.begin());
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
  }
  ops_pending_.push_back(std::move(op));
}

void StoreWriter::RunSubmitted(Store& store) {
  std::vector<StoreOp> ops;
  {
    std::lock_guard lock(audit_mu_);
    ops.swap(ops_pending_);
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    if (auto r = ops[i](store); !r) {
      RecordError("a submitted write: " + r.error());
      std::lock_guard lock(audit_mu_);
      ops_pending_.insert(ops_pending_.begin(), std::make_move_iterator(ops.begin() + static_cast<long>(i)),
                          std::make_move_iterator(ops.end()));
      return;
    }
  }
}

void StoreWriter::Run() {
  auto log = Logger("store");
  const bool retention = options_.retention_age > 0 || options_.max_stored_tasks > 0;
  const auto flush_wait =
      std::chrono::milliseconds(static_cast<int64_t>(std::max(0.001, options_.flush_interval) * 1000));
  std::vector<RowQueue::Chunk> chunks;
  BatchBuilder builder;
  std::optional<WriteBatch> pending;
  uint64_t pending_rows = 0;  // queued rows behind `pending`
  double backoff = 0;
  bool reconnect = false;
  std::optional<SteadyClock::time_point> deadline;

  for (;;) {
    if (stop_ && !deadline) {
      deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(
                                          std::chrono::duration<double>(options_.stop_timeout));
    }
    if (!pending) {
      chunks.clear();
      const size_t rows = queue_.Pop(chunks, options_.batch_rows, stop_ ? std::chrono::milliseconds(0) : flush_wait);
      if (rows > 0) {
        size_t bytes = 0;
        for (auto& c : chunks) {
          bytes += c.bytes.size();
          builder.Add(std::move(c.bytes));
        }
        chunks.clear();
        pending = builder.Take(UnixSeconds());
        queue_.Recycle(builder.spent());
        pending_rows = rows;
        queue_.SetReserved(bytes);
      } else if (stop_) {
        if (auto store = this->store()) {
          WriteAudit(*store);  // control actions of the last moments
          RunSubmitted(*store);
        }
        break;  // everything written
      }
    }
    UpdateQueueStats();

    std::shared_ptr<Store> store = this->store();
    bool failed = false;
    if (!store) {
      auto s = OpenStore(options_.config);
      if (s) {
        std::lock_guard lock(store_mu_);
        store_ = std::move(*s);
        store = store_;
        log->info("store opened: {} ({})", store->Describe(), store->backend());
      } else {
        RecordError("cannot open the store: " + s.error());
        failed = true;
      }
    } else if (reconnect) {
      if (auto r = store->Reconnect(); r) {
        reconnect = false;
      } else {
        RecordError(std::string(store->backend()) + ": reconnecting: " + r.error());
        failed = true;
      }
    }

    if (!failed && pending) {
      const auto t0 = SteadyClock::now();
      auto r = WriteWithSplit(*store, *pending);
      if (r) {
        const double took = Seconds(SteadyClock::now() - t0);
        stats_.tasks_committed.fetch_add(pending->tasks.size(), std::memory_order_relaxed);
        stats_.transitions_committed.fetch_add(pending->transitions.size(), std::memory_order_relaxed);
        stats_.workers_committed.fetch_add(pending->workers.size(), std::memory_order_relaxed);
        stats_.events_committed.fetch_add(pending->events.size(), std::memory_order_relaxed);
        stats_.batches.fetch_add(1, std::memory_order_relaxed);
        stats_.last_batch_seconds = took;
        stats_.last_commit_at = UnixSeconds();
        stats_.healthy = true;
        cost_rollup_.Observe(*store, *pending);
        rows_done_.fetch_add(pending_rows);
        pending.reset();
        queue_.SetReserved(0);
        UpdateQueueStats();
      } else {
        RecordError(std::string(store->backend()) + ": writing a batch of " + std::to_string(pending->rows()) +
                    " rows: " + r.error());
        reconnect = true;
        failed = true;
      }
    }

    if (failed) {
      ++failures_in_a_row_;
      failing_ = true;
      if (deadline && SteadyClock::now() >= *deadline) {
        const uint64_t lost = (pending ? pending_rows : 0) + queue_.rows();
        log->error("stopping with the store failing: {} history rows not written ({})", lost, stats_.LastError());
        rows_done_.fetch_add(lost);
        break;
      }
      backoff = backoff == 0 ? options_.retry_initial : std::min(backoff * 2, options_.retry_max);
      WaitFor(backoff);
      continue;
    }
    if (failing_ && store) {
      log->info("store recovered after {} failed attempts: {}", failures_in_a_row_, store->Describe());
      failing_ = false;
      failures_in_a_row_ = 0;
      backoff = 0;
    }
    stats_.healthy = store != nullptr;
    if (store) {
      WriteAudit(*store);
      RunSubmitted(*store);
    }
    if (retention && store && !pending && !stop_ && UnixSeconds() >= next_retention_) {
      RetentionStep(*store);
    }
  }
  UpdateQueueStats();
}

}  // namespace stalk
