// Stalk — Celery monitoring server.
// LiveFeed: what the dashboard's open pages receive once a second over server-sent events
// (GET /api/events/stream), and the /api/stalk/summary reply.
//
// As a StateListener it notes, on the ingest thread, which tasks changed (their seqs, bounded) and
// counts state transitions since start (cumulative, so pages derive throughput and failure rate from
// deltas): a vector append and an increment per event, no lock of its own — the listener runs under
// the state's write lock, and everything that reads or swaps those fields holds the read lock, so
// the rwlock already keeps them apart. Tick(), run every second by the HTTP server's
// timer, takes the read lock once, builds one small JSON payload — counts by state, workers
// online/offline, transition totals, the ids of tasks changed since the previous tick (coalesced:
// at most kMaxChangedIds, else `changed_overflow` tells pages to re-fetch) — and broadcasts it.
//
// Cost bound: the counts need a pass over every task (ClusterSummary: ~50 ms at a million tasks on a
// busy 2-core machine, see bench/web_bench.cc). Tick and /api/stalk/summary share one cached pass and
// reuse it until 20x the pass time has gone by, so however many pages are open, counting holds the
// read lock at most ~5% of the time; the changed ids are always fresh.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/ingest_stats.h"
#include "http/sse_hub.h"
#include "state/shared_state.h"
#include "state/state_listener.h"
#include "web/cluster_summary.h"

namespace stalk {

class LiveFeed : public StateListener {
 public:
  // Most task ids sent in one push; more changes in one second set changed_overflow instead.
  static constexpr size_t kMaxChangedIds = 500;
  // Most seqs remembered between pushes (a task sends ~4 events: sent/received/started/finished).
  static constexpr size_t kMaxChangedSeqs = 4 * kMaxChangedIds;
  // The count pass may take at most 1/kScanDutyDivisor of the time.
  static constexpr double kScanDutyDivisor = 20;

  // `ingest` may be null (tests). `now` is the wall clock (epoch seconds).
  LiveFeed(SharedState& state, const IngestStats* ingest, std::function<double()> now);

  // StateListener (ingest thread, under the write lock): cheap bookkeeping only.
  void OnTaskEvent(const ClusterState& state, const Task& task, const Event& ev, TaskState previous) override;
  void OnWorkerEvent(const ClusterState& state, const Worker& worker, const Event& ev) override;
  void OnWorkerOffline(const ClusterState& state, const Worker& worker, size_t lost) override;

  // Builds the payload and broadcasts it to every open stream. Returns the payload (for tests).
  // Calls are serialized (the server's timer makes one at a time anyway).
  std::string Tick();
  // GET /api/stalk/summary: counts, per-worker counts, totals, stream stats.
  std::string SummaryJson();

  SseHub& hub() { return hub_; }
  // Adds the live streams' families to a rendered exposition: stalk_sse_streams_open,
  // stalk_sse_streams_opened_total, stalk_sse_dropped_slow_total (README "Failure modes").
  void AppendMetrics(bool openmetrics, std::string& exposition) const;

 private:
  // The shared counts pass (caller holds the read lock): fresh unless the last pass is younger
  // than kScanDutyDivisor times its own duration.
  ClusterSummary Counts(const ClusterState& st, double now);
  void WriteCommon(const ClusterSummary& s, const std::array<uint64_t, kTaskStateCount>& transitions, JsonWriter& w);

  SharedState& state_;
  const IngestStats* ingest_;
  std::function<double()> now_;
  SseHub hub_;

  // Written by the listener (write lock held); read and swapped by Tick under the read lock, with
  // tick_mu_ keeping Ticks apart. transitions_ is read under the read lock by anyone.
  std::vector<uint64_t> changed_seqs_;
  bool changed_overflow_ = false;
  bool workers_changed_ = false;
  std::array<uint64_t, kTaskStateCount> transitions_{};  // tasks that entered each state
  std::mutex tick_mu_;

  std::mutex counts_mu_;  // the cached pass, shared by Tick and SummaryJson (HTTP threads)
  ClusterSummary counts_;
  bool have_counts_ = false;
  double counts_at_ = 0;  // steady seconds
};

}  // namespace stalk
