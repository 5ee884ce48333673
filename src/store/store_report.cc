// Stalk — Celery monitoring server.
#include "store/store_report.h"

#include "metrics/exposition_writer.h"

namespace stalk {
namespace {

uint64_t Load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }

}  // namespace

void AppendStoreMetrics(const StoreWriter& writer, bool openmetrics, std::string& exposition) {
  const StoreStats& s = writer.stats();
  ExpositionWriter w(openmetrics, 4096);
  w.Family("stalk_store_up", MetricType::kGauge, "1 while the durable history store is open and writing.");
  w.Open();
  w.Close(uint64_t{s.healthy.load()});
  w.Family("stalk_store_restoring", MetricType::kGauge,
           "1 while start-up loads history into the live state (the API serves meanwhile).");
  w.Open();
  w.Close(uint64_t{s.restoring.load()});
  w.Family("stalk_store_rows_written", MetricType::kCounter,
           "Rows committed to the store, by table (task rows after coalescing updates within a batch).");
  for (auto [table, v] : {std::pair{"tasks", &s.tasks_committed}, std::pair{"transitions", &s.transitions_committed},
                          std::pair{"workers", &s.workers_committed}, std::pair{"events", &s.events_committed},
                          std::pair{"audit_log", &s.audit_committed}}) {
    w.Open();
    w.Label("table", table);
    w.Close(Load(*v));
  }
  w.Family("stalk_store_batches", MetricType::kCounter, "Transactions committed to the store.");
  w.Open();
  w.Close(Load(s.batches));
  w.Family("stalk_store_errors", MetricType::kCounter, "Failed store opens, writes and retention steps.");
  w.Open();
  w.Close(Load(s.errors));
  w.Family("stalk_store_dropped", MetricType::kCounter,
           "History rows dropped because the store queue was full (--store_queue_mb).");
  w.Open();
  w.Close(Load(s.rows_dropped));
  w.Family("stalk_store_rejected", MetricType::kCounter, "History rows the database refused as invalid data.");
  w.Open();
  w.Close(Load(s.rows_rejected));
  w.Family("stalk_store_queue_bytes", MetricType::kGauge, "Bytes of history rows waiting for the store.");
  w.Open();
  w.Close(Load(s.queue_bytes));
  w.Family("stalk_store_last_commit_timestamp_seconds", MetricType::kGauge, "Wall time of the last store commit.");
  w.Open();
  w.Close(s.last_commit_at.load(std::memory_order_relaxed));
  w.Family("stalk_store_batch_duration_seconds", MetricType::kGauge, "Duration of the last store commit.");
  w.Open();
  w.Close(s.last_batch_seconds.load(std::memory_order_relaxed));
  w.Family("stalk_store_retention_deleted", MetricType::kCounter,
           "Rows deleted by retention (--retention, --max_stored_tasks), by table.");
  for (auto [table, v] :
       {std::pair{"tasks", &s.retention_tasks_deleted}, std::pair{"events", &s.retention_events_deleted}}) {
    w.Open();
    w.Label("table", table);
    w.Close(Load(*v));
  }
  w.AppendTo(exposition);
}

void WriteStoreStats(const StoreWriter& writer, JsonWriter& w) {
  const StoreStats& s = writer.stats();
  auto store = writer.store();
  w.Key("store");
  w.BeginObject();
  w.Field("backend", store ? std::string(store->backend()) : std::string());
  w.Field("location", store ? store->Describe() : std::string());
  w.Key("ok");
  w.Bool(s.healthy.load());
  const std::string err = s.LastError();
  w.FieldOrNull("last_error", err.empty() ? nullptr : &err);
  auto num = [&](std::string_view k, uint64_t v) {
    w.Key(k);
    w.Int(static_cast<int64_t>(v));
  };
  num("rows_queued", Load(s.rows_queued));
  num("rows_committed", Load(s.tasks_committed));
  num("transitions_committed", Load(s.transitions_committed));
  num("workers_committed", Load(s.workers_committed));
  num("events_committed", Load(s.events_committed));
  num("batches", Load(s.batches));
  num("errors", Load(s.errors));
  num("dropped", Load(s.rows_dropped));
  num("rejected", Load(s.rows_rejected));
  num("queue_bytes", Load(s.queue_bytes));
  num("queue_high_water_bytes", Load(s.queue_high_water_bytes));
  w.Field("last_commit_at", s.last_commit_at.load());
  w.Field("last_batch_seconds", s.last_batch_seconds.load());
  num("retention_tasks_deleted", Load(s.retention_tasks_deleted));
  num("retention_events_deleted", Load(s.retention_events_deleted));
  w.Key("restoring");
  w.Bool(s.restoring.load());
  num("restored_tasks", Load(s.restored_tasks));
  num("restored_workers", Load(s.restored_workers));
  w.Field("restore_seconds", s.restore_seconds.load());
  w.EndObject();
}

std::optional<std::string> StoreProblem(const StoreWriter& writer) {
  if (writer.stats().healthy.load()) {
    return std::nullopt;
  }
  std::string err = writer.stats().LastError();
  return err.empty() ? std::string("store not open yet") : err;
}

std::optional<std::string> RestoreNote(const StoreWriter& writer) {
  if (!writer.stats().restoring.load()) {
    return std::nullopt;
  }
  return "restoring history: " + std::to_string(writer.stats().restored_tasks.load()) + " tasks loaded so far";
}

std::optional<std::string> StoredTaskJson(const StoreWriter& writer, std::string_view id) {
  auto store = writer.store();
  if (!store) {
    return std::nullopt;
  }
  auto rec = store->LoadTask(id);
  if (!rec || !*rec) {
    return std::nullopt;
  }
  auto children = store->LoadChildren(id);
  JsonWriter w;
  WriteTaskRecordJson(**rec, children ? *children : std::vector<std::string>{}, w, /*with_task_id=*/true);
  return w.Take();
}

}  // namespace stalk
