// Stalk — Celery monitoring server.
#include "control/inspect_refresher.h"

#include <algorithm>

#include "common/log.h"
#include "common/thread_name.h"
#include "state/cluster_state.h"

namespace stalk {

InspectRefresher::InspectRefresher(RefreshFn refresh, InspectRefresherOptions options)
    : refresh_(std::move(refresh)), options_(options) {}

InspectRefresher::~InspectRefresher() { Stop(); }

void InspectRefresher::Start() {
  thread_ = std::thread([this] {
    NameThisThread("stalk-inspect");
    Run();
  });
}

void InspectRefresher::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  }
}

void InspectRefresher::Schedule(const std::string& hostname, double delay_seconds) {
  const auto due = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                          std::chrono::duration<double>(delay_seconds));
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = pending_.try_emplace(hostname, Pending{due, options_.attempts});
    if (!inserted) {
      it->second.due = std::min(it->second.due, due);
      it->second.attempts_left = options_.attempts;
    }
  }
  cv_.notify_all();
}

void InspectRefresher::OnWorkerEvent(const ClusterState&, const Worker& worker, const Event& ev) {
  bool first_sight = false;
  {
    std::lock_guard lock(mu_);
    first_sight = seen_.insert(worker.hostname).second;
  }
  if (first_sight || ev.kind == EventKind::kWorkerOnline) {
    Schedule(worker.hostname, options_.first_delay_seconds);
  }
}

void InspectRefresher::Run() {
  auto log = Logger("control");
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (pending_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto next = std::min_element(pending_.begin(), pending_.end(),
                                 [](const auto& a, const auto& b) { return a.second.due < b.second.due; });
    if (next->second.due > std::chrono::steady_clock::now()) {
      cv_.wait_until(lock, next->second.due);
      continue;
    }
    const std::string host = next->first;
    const int attempts_left = next->second.attempts_left - 1;
    pending_.erase(next);
    lock.unlock();
    auto answered = refresh_(host);
    const bool ok = answered && std::find(answered->begin(), answered->end(), host) != answered->end();
    lock.lock();
    if (!ok && attempts_left > 0 && !pending_.contains(host)) {
      // Not up yet (or the broker hiccuped): try again later, backing off.
      const double delay = options_.first_delay_seconds * (1 << (options_.attempts - attempts_left));
      pending_.emplace(host, Pending{std::chrono::steady_clock::now() +
                                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                             std::chrono::duration<double>(delay)),
                                     attempts_left});
    } else if (!ok) {
      log->debug("worker {} did not answer inspection{}", host, answered ? "" : ": " + answered.error());
    }
  }
}

}  // namespace stalk
