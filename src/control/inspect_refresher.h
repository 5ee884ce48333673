// Stalk — Celery monitoring server.
// InspectRefresher: keeps the inspect cache warm without anyone asking. A StateListener: the first
// event seen from a worker, and every worker-online, schedule an inspection of that worker a moment
// later (a worker announces itself before its pidbox consumer is up), retried a few times with
// backoff when it does not answer. Runs on its own thread, so the ingest thread only queues a name
// (under its own small mutex, never waiting on the broker).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "state/state_listener.h"

namespace stalk {

struct InspectRefresherOptions {
  double first_delay_seconds = 1.0;  // after worker-online, before the first inspection
  int attempts = 3;                  // inspections tried while the worker does not answer
};

class InspectRefresher : public StateListener {
 public:
  // `refresh(hostname)` inspects one worker and returns the hostnames that answered.
  using RefreshFn = std::function<Result<std::vector<std::string>>(const std::string&)>;

  InspectRefresher(RefreshFn refresh, InspectRefresherOptions options);
  ~InspectRefresher() override;

  void Start();
  void Stop();
  // Schedules an inspection of `hostname` in `delay_seconds` (an earlier one wins).
  void Schedule(const std::string& hostname, double delay_seconds);

  void OnWorkerEvent(const ClusterState& state, const Worker& worker, const Event& ev) override;

 private:
  struct Pending {
    std::chrono::steady_clock::time_point due;
    int attempts_left;
  };
  void Run();

  RefreshFn refresh_;
  InspectRefresherOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Pending> pending_;
  std::set<std::string> seen_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace stalk
