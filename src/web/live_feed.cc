// Stalk — Celery monitoring server.
#include "web/live_feed.h"

#include "metrics/exposition_writer.h"

#include <algorithm>
#include <chrono>

namespace stalk {
namespace {

double SteadySeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

LiveFeed::LiveFeed(SharedState& state, const IngestStats* ingest, std::function<double()> now)
    : state_(state), ingest_(ingest), now_(std::move(now)) {
  changed_seqs_.reserve(kMaxChangedSeqs);
}
// Note: Tick swaps changed_seqs_ with a vector reserved to kMaxChangedSeqs, so the listener's
// push_back never allocates between ticks.

void LiveFeed::OnTaskEvent(const ClusterState&, const Task& task, const Event&, TaskState previous) {
  if (changed_seqs_.size() < kMaxChangedSeqs) {
    changed_seqs_.push_back(task.seq);
  } else {
    changed_overflow_ = true;
  }
  if (task.state != previous) {
    ++transitions_[static_cast<size_t>(task.state)];
  }
}

void LiveFeed::OnWorkerEvent(const ClusterState&, const Worker&, const Event&) { workers_changed_ = true; }

void LiveFeed::OnWorkerOffline(const ClusterState&, const Worker&, size_t) { workers_changed_ = true; }

ClusterSummary LiveFeed::Counts(const ClusterState& st, double now) {
  std::lock_guard lock(counts_mu_);
  const double steady = SteadySeconds();
  if (!have_counts_ || steady - counts_at_ >= counts_.scan_seconds * kScanDutyDivisor) {
    counts_ = SummarizeCluster(st, now, /*with_workers=*/true);
    counts_at_ = steady;
    have_counts_ = true;
  }
  return counts_;
}

void LiveFeed::WriteCommon(const ClusterSummary& s, const std::array<uint64_t, kTaskStateCount>& transitions,
                           JsonWriter& w) {
  w.Key("tasks");
  WriteTaskCounts(s, w);
  w.Key("workers");
  WriteWorkerCounts(s, w);
  w.Key("transitions");
  w.BeginObject();
  for (size_t i = 0; i < kTaskStateCount; ++i) {
    w.Key(TaskStateName(static_cast<TaskState>(i)));
    w.Int(static_cast<int64_t>(transitions[i]));
  }
  w.EndObject();
  if (ingest_) {
    w.Key("events_ingested");
    w.Int(static_cast<int64_t>(ingest_->events_ingested.load(std::memory_order_relaxed)));
    w.Key("broker_connected");
    w.Bool(ingest_->broker_connected.load(std::memory_order_relaxed));
  }
}

std::string LiveFeed::Tick() {
  std::lock_guard tick_lock(tick_mu_);
  std::vector<uint64_t> seqs;
  seqs.reserve(kMaxChangedSeqs);
  bool overflow = false;
  bool workers_changed = false;
  ClusterSummary counts;
  std::array<uint64_t, kTaskStateCount> transitions;
  const double now = now_();
  JsonWriter w;
  w.BeginObject();
  w.Key("time");
  w.Double(now);
  {
    auto st = state_.Read();  // excludes the listener (ingest thread, write lock)
    seqs.swap(changed_seqs_);
    overflow = changed_overflow_;
    workers_changed = workers_changed_;
    changed_overflow_ = workers_changed_ = false;
    transitions = transitions_;
    counts = Counts(*st, now);
    std::sort(seqs.begin(), seqs.end());
    seqs.erase(std::unique(seqs.begin(), seqs.end()), seqs.end());
    if (seqs.size() > kMaxChangedIds) {
      overflow = true;
      seqs.erase(seqs.begin(), seqs.end() - static_cast<std::ptrdiff_t>(kMaxChangedIds));  // keep the newest
    }
    w.Key("changed");
    w.BeginArray();
    for (auto it = seqs.rbegin(); it != seqs.rend(); ++it) {  // newest first
      if (const Task* t = st->TaskBySeq(*it)) {
        char buf[36];
        w.String(t->IdView(buf));
      }
    }
    w.EndArray();
  }
  w.Key("changed_overflow");
  w.Bool(overflow);
  w.Key("workers_changed");
  w.Bool(workers_changed);
  w.Key("counts_time");
  w.Double(counts.time);
  WriteCommon(counts, transitions, w);
  w.EndObject();
  std::string payload = w.Take();
  hub_.Broadcast(payload);
  return payload;
}

std::string LiveFeed::SummaryJson() {
  const double now = now_();
  ClusterSummary s;
  std::array<uint64_t, kTaskStateCount> transitions;
  {
    auto st = state_.Read();
    s = Counts(*st, now);
    transitions = transitions_;
  }
  JsonWriter w;
  w.BeginObject();
  w.Key("time");
  w.Double(now);
  w.Key("counts_time");
  w.Double(s.time);
  WriteCommon(s, transitions, w);
  w.Key("by_worker");
  WriteWorkerTaskCounts(s, w);
  w.Key("scan_seconds");
  w.Double(s.scan_seconds);
  w.Key("streams");
  w.BeginObject();
  w.Key("open");
  w.Int(static_cast<int64_t>(hub_.open_streams()));
  w.Key("opened");
  w.Int(static_cast<int64_t>(hub_.streams_opened()));
  w.Key("dropped_slow");
  w.Int(static_cast<int64_t>(hub_.dropped_slow()));
  w.EndObject();
  w.EndObject();
  return w.Take();
}

void LiveFeed::AppendMetrics(bool openmetrics, std::string& exposition) const {
  ExpositionWriter w(openmetrics, 1024);
  w.Family("stalk_sse_streams_open", MetricType::kGauge, "Live-event streams (/api/events/stream) open now.");
  w.Open();
  w.Close(uint64_t{hub_.open_streams()});
  w.Family("stalk_sse_streams_opened", MetricType::kCounter, "Live-event streams opened since start.");
  w.Open();
  w.Close(hub_.streams_opened());
  w.Family("stalk_sse_dropped_slow", MetricType::kCounter,
           "Live-event streams closed because the client did not read (unsent bytes over the bound, or a write "
           "stalled past --stream_write_timeout).");
  w.Open();
  w.Close(hub_.dropped_slow());
  w.AppendTo(exposition);
}

}  // namespace stalk
