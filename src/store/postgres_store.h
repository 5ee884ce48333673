// Stalk — Celery monitoring server.
// PostgresStore: the shared backend (libpq), for several Stalk instances writing one history (HA
// behind a load balancer, one instance per region). Same schema as SQLite; migrations run under an
// advisory lock so instances starting together migrate once.
//
// A batch is one transaction: each table's rows are streamed with COPY into a temporary staging
// table (ON COMMIT DELETE ROWS), then upserted with one INSERT ... SELECT ... ON CONFLICT, ordered by
// key so concurrent instances lock rows in the same order and cannot deadlock. Writes use the
// "shared" merge (StoreConfig::shared): a stored task is replaced only by a record at least as new by
// event timestamp, and known fields are never cleared. Text is sent as valid UTF-8 (invalid bytes and
// NULs, which PostgreSQL refuses, become U+FFFD).
//
// Two connections, as SqliteStore: the writer's (StoreWriter's thread) and a reader's behind a mutex.
// Passwords never leave this file: Describe() and errors show the URL redacted.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

typedef struct pg_conn PGconn;

namespace stalk {

class PostgresStore final : public Store {
 public:
  // Connects (connect_timeout 5 s unless the URL says otherwise) and migrates.
  static Result<std::unique_ptr<PostgresStore>> Open(const StoreConfig& config);
  ~PostgresStore() override;

  std::string_view backend() const override { return "postgresql"; }
  std::string Describe() const override { return redacted_; }

  Result<bool> Write(const WriteBatch& batch) override;
  bool LastWriteErrorIsPermanent() const override { return last_permanent_; }
  Result<bool> Reconnect() override;
  Result<RetentionStep> DeleteOlderThan(double cutoff, size_t max_rows) override;

  Result<std::optional<double>> NthNewestTimestamp(size_t n) override;
  Result<size_t> ForEachRecentTask(size_t limit, const std::function<void(std::vector<TaskRecord>&)>& fn) override;
  Result<std::vector<WorkerRecord>> LoadWorkers() override;
  Result<std::optional<TaskRecord>> LoadTask(std::string_view id) override;
  Result<std::vector<TaskRecord>> SearchTasks(const TaskSearch& q) override;
  Result<std::vector<std::string>> LoadChildren(std::string_view id) override;
  Result<std::vector<TransitionRecord>> LoadTransitions(std::string_view id) override;
  Result<size_t> CountTasks() override;
  Result<bool> AppendAudit(const std::vector<AuditEntry>& entries) override;
  Result<std::vector<AuditEntry>> LoadAudit(size_t limit) override;
  Result<int> SchemaVersion() override;
  bool HasRollupTables() const override { return true; }
  Result<bool> SaveSilence(const SilenceRecord& s) override;
  Result<bool> DeleteSilence(std::string_view id) override;
  Result<std::vector<SilenceRecord>> LoadSilences() override;
  Result<bool> AddCostRollup(const std::vector<FinishedTaskCost>& tasks) override;
  Result<std::vector<CostRollupRow>> LoadCostRollup(double since) override;
  Result<bool> DeleteCostRollupBefore(double cutoff, double counted_cutoff) override;

 private:
  explicit PostgresStore(StoreConfig config);
  Result<bool> OpenWriter();
  Result<PGconn*> ReaderLocked();  // caller holds read_mu_; reconnects a broken reader
  Result<bool> WriteInTransaction(const WriteBatch& batch);

  StoreConfig config_;
  std::string redacted_;
  PGconn* writer_ = nullptr;
  bool last_permanent_ = false;  // writer thread only
  std::mutex read_mu_;
  PGconn* reader_ = nullptr;  // guarded by read_mu_
};

// The URL with its password (user:password@ or password=...) replaced by "***".
std::string RedactPostgresUrl(std::string_view url);

}  // namespace stalk
