// Stalk — Celery monitoring server.
#include "store/store.h"

#include <charconv>

#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace stalk {

bool IsPostgresUrl(std::string_view url) { return url.starts_with("postgresql://") || url.starts_with("postgres://"); }

Result<std::unique_ptr<Store>> OpenStore(const StoreConfig& config) {
  if (config.url.empty()) {
    return Error{"no database given"};
  }
  if (IsPostgresUrl(config.url)) {
    StoreConfig shared = config;
    shared.shared = true;  // a PostgreSQL history is meant to be shared by instances
    auto s = PostgresStore::Open(shared);
    if (!s)
      return Error{s.error()};
    return std::unique_ptr<Store>(std::move(*s));
  }
  if (const size_t colon = config.url.find("://"); colon != std::string::npos) {
    return Error{"unsupported database URL scheme '" + config.url.substr(0, colon) +
                 "': use a file path (SQLite) or postgresql://"};
  }
  auto s = SqliteStore::Open(config);
  if (!s)
    return Error{s.error()};
  return std::unique_ptr<Store>(std::move(*s));
}

Result<double> ParseDuration(std::string_view text) {
  while (!text.empty() && text.front() == ' ')
    text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ')
    text.remove_suffix(1);
  if (text.empty()) {
    return 0.0;
  }
  double unit = 1;
  switch (text.back()) {
    case 's':
      unit = 1;
      text.remove_suffix(1);
      break;
    case 'm':
      unit = 60;
      text.remove_suffix(1);
      break;
    case 'h':
      unit = 3600;
      text.remove_suffix(1);
      break;
    case 'd':
      unit = 86400;
      text.remove_suffix(1);
      break;
    case 'w':
      unit = 7 * 86400;
      text.remove_suffix(1);
      break;
    default:
      break;
  }
  double v = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || r.ec != std::errc() || r.ptr != text.data() + text.size() || v < 0) {
    return Error{"invalid duration '" + std::string(text) + "': use e.g. 7d, 12h, 30m, 3600s or 0"};
  }
  return v * unit;
}

// ------------------------------------------------------------------ optional tables (schema version 4)

namespace {
Error NotSupported(const Store& s) { return Error{std::string(s.backend()) + ": not supported by this store"}; }
}  // namespace

Result<bool> Store::SaveSilence(const SilenceRecord&) { return NotSupported(*this); }
Result<bool> Store::DeleteSilence(std::string_view) { return NotSupported(*this); }
Result<std::vector<SilenceRecord>> Store::LoadSilences() { return NotSupported(*this); }
Result<bool> Store::AddCostRollup(const std::vector<FinishedTaskCost>&) { return NotSupported(*this); }
Result<std::vector<CostRollupRow>> Store::LoadCostRollup(double) { return NotSupported(*this); }
Result<bool> Store::DeleteCostRollupBefore(double, double) { return NotSupported(*this); }

}  // namespace stalk
