// Stalk — Celery monitoring server.
// InspectCache: what workers last answered to the inspect commands Flower caches per worker
// (application.workers): stats, active_queues, registered, scheduled, active, reserved, revoked,
// conf, plus the time of the last update. Replies are kept as JSON text, rendered once, so a
// /api/workers snapshot only copies strings. Has its own mutex (never the state lock), so nothing
// here waits on the broker or blocks ingestion.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "control/pidbox.h"

namespace stalk {

// The inspect methods Flower's Inspector runs, in its order, with the arguments Celery's Inspect sends.
struct InspectMethod {
  const char* name;
  const char* arguments_json;
};
const std::vector<InspectMethod>& CachedInspectMethods();

class InspectCache {
 public:
  // Per worker: (method, JSON text) in CachedInspectMethods order, then ("timestamp", epoch seconds).
  using Fields = std::vector<std::pair<std::string, std::string>>;

  // Records the replies to `method`; error replies ({"error": ...}) and nulls are skipped (Flower
  // keeps a worker's previous answer then). Returns the hostnames that answered.
  std::vector<std::string> Update(const std::string& method, const std::vector<ControlReply>& replies, double now);

  std::map<std::string, Fields> Snapshot() const;
  std::optional<Fields> SnapshotOf(const std::string& hostname) const;
  bool Knows(const std::string& hostname) const;
  std::vector<std::string> Hostnames() const;
  // Queue names from every worker's active_queues (what Flower's /api/queues/length reports).
  std::vector<std::string> QueueNames() const;
  // Whether any worker reported `task_name` in `registered`; nullopt when no worker reported a
  // registered list yet (then nothing is known).
  std::optional<bool> IsRegistered(const std::string& task_name) const;
  // Forgets a worker (e.g. when the state purges it).
  void Forget(const std::string& hostname);

 private:
  struct Entry {
    std::map<std::string, std::string> by_method;  // method -> JSON text
    std::set<std::string> queues;                  // names from active_queues
    std::set<std::string> registered;              // task names from registered
    bool has_registered = false;
    double timestamp = 0;
  };
  static Fields Render(const Entry& e);

  mutable std::mutex mu_;
  std::map<std::string, Entry> workers_;
};

}  // namespace stalk
