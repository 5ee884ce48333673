// Stalk — Celery monitoring server.
// Wiring of the features that join the store to alerts/ and custom/ (issues 9 and 12), kept out of
// serve.cc: alert silences kept in the store's silences table, and the cost view's windows read from
// the store's hourly rollup. Neither layer knows the store; these functions are the bridge.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "alerts/alert_engine.h"
#include "custom/cost_ledger.h"
#include "store/store_writer.h"

namespace stalk {

// Loads the stored silences into the engine (expired ones are dropped at its first evaluation, and
// then from the store) and sends every later add/remove to the store through the writer's thread.
// Call before the engine starts. Returns how many silences were loaded.
size_t WirePersistedSilences(AlertEngine& engine, StoreWriter& writer);

// The cost windows' source: rollup rows of the hours since `since`, each scaled by its share inside
// the window (store/cost_rollup.h CostRowShare).
std::function<Result<std::vector<std::pair<CostKey, CostEntry>>>(double since)> StoredCost(StoreWriter& writer);

}  // namespace stalk
