// Stalk — Celery monitoring server.
#include "cli/feature_wiring.h"

#include "common/log.h"
#include "store/cost_rollup.h"

namespace stalk {

size_t WirePersistedSilences(AlertEngine& engine, StoreWriter& writer) {
  auto log = Logger("alerts");
  size_t loaded = 0;
  if (auto store = writer.store()) {
    if (auto rows = store->LoadSilences(); rows) {
      std::vector<Silence> silences;
      for (const auto& r : *rows) {
        auto matchers = ParseMatchersJson(r.matchers_json);
        if (!matchers) {
          log->warn("stored silence {} skipped: {}", r.id, matchers.error());
          continue;
        }
        silences.push_back(Silence{r.id, std::move(*matchers), r.starts_at, r.ends_at, r.created_by, r.comment});
      }
      loaded = silences.size();
      engine.RestoreSilences(std::move(silences));
      if (loaded > 0)
        log->info("{} silences restored from the store", loaded);
    } else {
      log->error("cannot load the stored silences (they stay in the store): {}", rows.error());
    }
  }
  StoreWriter* w = &writer;
  engine.SetSilencePersistence(SilencePersistence{
      [w](const Silence& s) {
        SilenceRecord r{s.id, MatchersJson(s), s.starts_at, s.ends_at, s.created_by, s.comment};
        w->Submit([r = std::move(r)](Store& store) { return store.SaveSilence(r); });
      },
      [w](const std::string& id) { w->Submit([id](Store& store) { return store.DeleteSilence(id); }); }});
  return loaded;
}

std::function<Result<std::vector<std::pair<CostKey, CostEntry>>>(double since)> StoredCost(StoreWriter& writer) {
  return [&writer](double since) -> Result<std::vector<std::pair<CostKey, CostEntry>>> {
    auto store = writer.store();
    if (!store)
      return Error{"the store is not open"};
    auto rows = store->LoadCostRollup(since);
    if (!rows)
      return Error{rows.error()};
    std::vector<std::pair<CostKey, CostEntry>> out;
    out.reserve(rows->size());
    for (auto& r : *rows) {
      const double share = CostRowShare(r, since);
      if (share <= 0)
        continue;
      CostEntry e;
      e.seconds = r.worker_seconds * share;
      e.tasks = static_cast<uint64_t>(static_cast<double>(r.runs) * share + 0.5);
      e.estimated = static_cast<uint64_t>(static_cast<double>(r.estimated) * share + 0.5);
      out.emplace_back(CostKey{std::move(r.name), std::move(r.queue), std::move(r.worker)}, e);
    }
    return out;
  };
}

}  // namespace stalk
