// Stalk — Celery monitoring server.
// SqliteStore: the embedded backend, one database file (plus its -wal and -shm files). Two
// connections: the writer's, used by StoreWriter's thread only (prepared single-row statements inside
// one transaction per batch, which SQLite runs at memory speed: no round trips), and a reader's behind
// a mutex for the API and start-up. WAL mode lets the reader see the last commit while a batch is
// being written.
//
// Durability: journal_mode=WAL with synchronous=NORMAL. A commit is in the WAL (the OS's page cache)
// when Write returns, so it survives the process being killed (kill -9) at any instant; only an OS
// crash or power loss may lose the last commits (never corrupt the file). busy_timeout covers another
// process holding the lock briefly (e.g. the sqlite3 CLI reading the file).
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "store/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace stalk {

class SqliteStore final : public Store {
 public:
  // Opens or creates `config.url` (a path, or a "file:" URI such as "file:/x.db?mode=ro") and
  // migrates it. Errors: cannot open/create, not a SQLite database, migration failed.
  static Result<std::unique_ptr<SqliteStore>> Open(const StoreConfig& config);
  ~SqliteStore() override;

  std::string_view backend() const override { return "sqlite"; }
  std::string Describe() const override { return config_.url; }

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
  struct Writer;  // the write connection and its prepared statements
  explicit SqliteStore(StoreConfig config);
  Result<bool> OpenWriter();
  Result<bool> OpenReader();
  Result<bool> WriteInTransaction(const WriteBatch& batch);

  StoreConfig config_;
  std::unique_ptr<Writer> writer_;
  bool last_permanent_ = false;  // writer thread only
  std::mutex read_mu_;
  sqlite3* reader_ = nullptr;  // guarded by read_mu_
};

}  // namespace stalk
