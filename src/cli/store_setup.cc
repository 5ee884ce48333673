// Stalk — Celery monitoring server.
#include "cli/store_setup.h"

#include "common/log.h"
#include "store/history_loader.h"
#include "store/store_report.h"

namespace stalk {

Result<std::unique_ptr<StoreWriter>> SetUpStore(const ServeSettings& s, LoadShed* shed) {
  if (!s.persistent || s.db.empty() || s.db == "none") {
    return std::unique_ptr<StoreWriter>();
  }
  auto retention = ParseDuration(s.retention);
  if (!retention) {
    return Error{"--retention: " + retention.error()};
  }
  if (s.max_stored_tasks < 0) {
    return Error{"--max_stored_tasks must be 0 (unbounded) or more"};
  }
  StoreWriterOptions o;
  o.config.url = s.db;
  o.queue_bytes = static_cast<size_t>(std::max(1, s.store_queue_mb)) << 20;
  o.store_events = s.store_events;
  o.retention_age = *retention;
  o.max_stored_tasks = static_cast<size_t>(s.max_stored_tasks);
  o.shed = shed;
  auto writer = std::make_unique<StoreWriter>(o);
  if (auto r = writer->Open(); !r) {
    Logger("store")->error("history store unavailable, serving live state only and retrying: {}", r.error());
  } else {
    writer->mutable_stats().restoring = true;  // from now until RestoreAndStartStore is done
  }
  return writer;
}

void RestoreAndStartStore(StoreWriter& writer, const ServeSettings& s, SharedState& state) {
  if (auto store = writer.store()) {
    StoreStats& st = writer.mutable_stats();
    st.restored_tasks = 0;
    st.restoring = true;
    auto restored = RestoreState(*store, state, static_cast<size_t>(std::max(0, s.max_tasks)), &st.restored_tasks);
    auto log = Logger("store");
    if (restored) {
      st.restored_tasks = restored->tasks;
      st.restored_workers = restored->workers;
      st.restore_seconds = restored->seconds;
      log->info("history: {} ({}), restored {} tasks and {} workers in {:.2f} s", store->Describe(), store->backend(),
                restored->tasks, restored->workers, restored->seconds);
    } else {
      log->error("history: cannot restore from {}: {}", store->Describe(), restored.error());
    }
    st.restoring = false;
  }
  state.Write()->AddListener(&writer);
  writer.Start();
}

void WireStoreApi(StoreWriter& store, ApiContext& ctx) {
  ctx.stored_task_json = [&store](std::string_view id) { return StoredTaskJson(store, id); };
  ctx.extra_stats = [&store](JsonWriter& w) { WriteStoreStats(store, w); };
  ctx.store_problem = [&store] { return StoreProblem(store); };
  ctx.start_up_note = [&store] { return RestoreNote(store); };
  if (ctx.render_metrics) {
    ctx.render_metrics = [&store, inner = std::move(ctx.render_metrics)](bool openmetrics) {
      std::string text = inner(openmetrics);
      AppendStoreMetrics(store, openmetrics, text);
      return text;
    };
  }
}

}  // namespace stalk
