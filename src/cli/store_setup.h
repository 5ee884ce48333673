// Stalk — Celery monitoring server.
// Wiring of durable history (store/) into `stalk serve`: settings -> StoreWriterOptions, open, restore
// the most recent tasks and the workers into the state (while the API already serves), register the
// writer as a state listener, and hand the API its store functions (evicted tasks, stats block, health
// notes, stalk_store_* metrics).
// Kept out of serve.cc so that file stays a list of components.
#pragma once

#include <memory>

#include "cli/settings.h"
#include "common/result.h"
#include "http/api_routes.h"
#include "state/shared_state.h"
#include "store/store_writer.h"

namespace stalk {

// Null when history is off (--persistent=false, --db '' or none). Errors: invalid options only; a
// database that cannot be opened is logged and retried in the background (Stalk serves live state
// meanwhile, /healthcheck says so). Opens the store only: see RestoreAndStartStore. `shed`: ingestion's
// load shedding, which may skip --store_events rows first (common/load_shed.h).
Result<std::unique_ptr<StoreWriter>> SetUpStore(const ServeSettings& s, LoadShed* shed = nullptr);

// Loads the most recent --max_tasks tasks and the workers into the state (stats().restoring is set
// meanwhile), then registers the writer as a state listener and starts it. Call once the API serves
// and the event source is buffering, and before ingestion applies events: restored records then never
// overwrite newer live ones, and events published during the restore wait in the ingest queue instead
// of being lost.
void RestoreAndStartStore(StoreWriter& writer, const ServeSettings& s, SharedState& state);

// Adds the store to the API context. Call after ctx.render_metrics is set (it is wrapped).
void WireStoreApi(StoreWriter& store, ApiContext& ctx);

}  // namespace stalk
