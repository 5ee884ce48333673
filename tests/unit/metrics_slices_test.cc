// Stalk — Celery monitoring server.
// Unit tests of Metrics::Render taking the state's read lock in slices (metrics/sliced_read_lock.h):
// a render released at every clock check gives the same exposition as one in a single hold, and a
// render interleaved with a writer that adds, offlines and evicts workers and tasks stays valid —
// no duplicate series, every histogram series whole (+Inf bucket == _count), counters monotonic.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/ingest_stats.h"
#include "metrics/metrics.h"
#include "state/cluster_state.h"
#include "state/shared_state.h"

namespace stalk {
namespace {

OptStr S(std::string_view v) { return OptStr{v, true, false}; }

std::string Uuid(uint64_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%08llx-0000-4000-8000-%012llx",
                static_cast<unsigned long long>(n >> 16 & 0xffffffff),
                static_cast<unsigned long long>(n & 0xffffffffffff));
  return buf;
}

Event WorkerEvent(std::string_view type, const std::string& host, double ts) {
  Event ev;
  ev.type = type;
  ev.kind = ClassifyEventType(type);
  ev.hostname = host;
  ev.timestamp = ts;
  ev.has_timestamp = true;
  ev.freq = 2.0;
  ev.active = 1;
  return ev;
}

// One task on `host`: sent, received, then (by `stage`) left prefetched, executing, succeeded or failed.
void ApplyTask(ClusterState& st, uint64_t n, const std::string& name, const std::string& host, double ts, int stage) {
  const std::string id = Uuid(n);
  auto ev = [&](std::string_view type, std::string_view hostname, double at) {
    Event e;
    e.type = type;
    e.kind = ClassifyEventType(type);
    e.uuid = id;
    e.hostname = hostname;
    e.timestamp = at;
    e.has_timestamp = true;
    return e;
  };
  Event sent = ev("task-sent", "gen1@web", ts);
  sent.name = S(name);
  sent.queue = S(n % 2 ? "celery" : "low");
  st.Apply(sent, ts);
  Event rcv = ev("task-received", host, ts + 0.1);
  rcv.name = S(name);
  rcv.eta = OptStr{{}, true, true};
  st.Apply(rcv, ts + 0.1);
  if (stage == 0) {
    return;  // prefetched
  }
  st.Apply(ev("task-started", host, ts + 0.2), ts + 0.2);
  if (stage == 1) {
    return;  // executing
  }
  if (stage == 2) {
    Event done = ev("task-succeeded", host, ts + 0.5);
    done.runtime = 0.3;
    st.Apply(done, ts + 0.5);
  } else {
    Event failed = ev("task-failed", host, ts + 0.5);
    failed.exception = S("ValueError('x')");
    st.Apply(failed, ts + 0.5);
  }
}

std::string Host(int w) { return "celery@w" + std::to_string(w); }
std::string Name(int k) { return "tasks.t" + std::to_string(k); }

// Sample lines, without the RSS gauge (it changes between two renders).
std::vector<std::string_view> Samples(const std::string& body) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < body.size()) {
    const size_t end = body.find('\n', pos);
    std::string_view line(body.data() + pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line[0] != '#' && !line.starts_with("stalk_process_resident_memory_bytes")) {
      out.push_back(line);
    }
  }
  return out;
}

std::string_view SeriesOf(std::string_view line) { return line.substr(0, line.rfind(' ')); }
double ValueOf(std::string_view line) {
  return std::strtod(std::string(line.substr(line.rfind(' ') + 1)).c_str(), nullptr);
}

TEST(SlicedRender, SameExpositionAsOneHold) {
  SharedState state{StateOptions{}};
  MetricsOptions sliced_options;
  sliced_options.render_slice_seconds = 0;  // release at every clock check
  MetricsOptions whole_options;
  whole_options.render_slice_seconds = 3600;
  Metrics sliced(sliced_options), whole(whole_options);
  {
    auto st = state.Write();
    st->AddListener(&sliced);
    st->AddListener(&whole);
    uint64_t n = 1;
    for (int w = 0; w < 20; ++w) {
      st->Apply(WorkerEvent("worker-online", Host(w), 1000), 1000);
      for (int k = 0; k < 15; ++k) {
        ApplyTask(*st, n++, Name((w + k) % 25), Host(w), 1000 + k, k % 4);
      }
    }
    st->Apply(WorkerEvent("worker-offline", Host(3), 1020), 1020);
  }
  IngestStats ingest;
  RenderStats sliced_stats, whole_stats;
  const std::string a = sliced.Render(state, ingest, {{"celery", 4}}, 1020, false, &sliced_stats);
  const std::string b = whole.Render(state, ingest, {{"celery", 4}}, 1020, false, &whole_stats);
  EXPECT_GT(sliced_stats.slices, 20u);
  EXPECT_EQ(whole_stats.slices, 4u);  // released where nothing needs the state: view, flower, celery, stalk
  EXPECT_GT(Samples(a).size(), 1000u);
  EXPECT_EQ(Samples(a), Samples(b));
  const std::string om = sliced.Render(state, ingest, {}, 1020, true);
  EXPECT_TRUE(om.ends_with("# EOF\n"));
}

// A writer thread keeps adding workers and tasks, taking workers offline, and (small caps) evicting
// both, while renders run sliced at every clock check.
TEST(SlicedRender, ConsistentWhileTheWriterChangesTheState) {
  StateOptions so;
  so.max_tasks = 400;
  so.max_workers = 12;
  SharedState state(so);
  MetricsOptions mo;
  mo.render_slice_seconds = 0;
  Metrics metrics(mo);
  state.Write()->AddListener(&metrics);

  constexpr int kRounds = 3000;
  std::atomic<int> rounds_done{0};
  std::atomic<int> renders_started{0};
  std::thread writer([&] {
    uint64_t n = 1;
    for (int r = 0; r < kRounds; ++r) {
      {
        auto st = state.Write();
        const double ts = 1000 + r * 0.01;
        st->Apply(WorkerEvent("worker-heartbeat", Host(r % 30), ts), ts);
        for (int k = 0; k < 3; ++k) {
          ApplyTask(*st, n++, Name((r + k) % 40), Host(r % 30), ts, (r + k) % 4);
        }
        if (r % 3 == 0) {
          st->Apply(WorkerEvent("worker-offline", Host((r + 15) % 30), ts), ts);
        }
      }
      rounds_done.store(r + 1, std::memory_order_relaxed);
      std::this_thread::yield();  // lets a reader in: the lock prefers writers
      // On a busy machine the writer could finish before the reader renders more than once: keep
      // the two interleaved (at least one render per 500 rounds) so the test means something.
      while (renders_started.load() < r / 500) {
        std::this_thread::yield();
      }
    }
  });

  IngestStats ingest;
  double last_events = 0;
  int renders = 0, overlapping = 0;
  size_t slices = 0;
  for (int i = 0; i < 100000 && rounds_done.load() < kRounds; ++i) {
    const int before = rounds_done.load();
    renders_started.fetch_add(1);
    RenderStats stats;
    const std::string m = metrics.Render(state, ingest, {}, 1000 + before * 0.01, false, &stats);
    overlapping += rounds_done.load() > before ? 1 : 0;
    ++renders;
    slices += stats.slices;
    const auto samples = Samples(m);
    std::set<std::string_view> seen;
    double events = 0;
    for (std::string_view line : samples) {
      ASSERT_TRUE(seen.insert(SeriesOf(line)).second) << "duplicate series " << line;
      if (line.starts_with("flower_events_total{")) {
        events += ValueOf(line);
      }
      // Each histogram series is written within one slice: its +Inf bucket equals its _count.
      for (std::string_view family : {"flower_task_runtime_seconds", "celery_task_runtime"}) {
        const std::string count_prefix = std::string(family) + "_count{";
        if (!line.starts_with(count_prefix)) {
          continue;
        }
        const std::string_view labels = SeriesOf(line).substr(count_prefix.size() - 1);  // "{...}"
        const std::string inf =
            std::string(family) + "_bucket" + std::string(labels.substr(0, labels.size() - 1)) + ",le=\"+Inf\"}";
        bool found = false;
        for (std::string_view other : samples) {
          if (SeriesOf(other) == inf) {
            EXPECT_EQ(ValueOf(other), ValueOf(line)) << inf;
            found = true;
            break;
          }
        }
        EXPECT_TRUE(found) << inf;
      }
    }
    EXPECT_GE(events, last_events) << "flower_events_total went down between two renders";
    last_events = events;
  }
  writer.join();
  EXPECT_GT(renders, 2);
  EXPECT_GT(overlapping, 0) << "the writer never got the lock during a render";
  EXPECT_GT(slices, static_cast<size_t>(renders));
  // And a final, quiet render agrees with the state: one line per worker it keeps, every event.
  const std::string m = metrics.Render(state, ingest, {}, 1000 + kRounds * 0.01, false);
  size_t tracked = 0;
  {
    auto st = state.Read();
    tracked = st->workers().size();
    EXPECT_GT(st->counters().workers_evicted, 0u);  // a worker could vanish between slices
    EXPECT_GT(st->counters().tasks_evicted, 0u);
  }
  double events = 0;
  size_t workers = 0;
  for (std::string_view line : Samples(m)) {
    events += line.starts_with("flower_events_total{") ? ValueOf(line) : 0;
    workers += line.starts_with("flower_worker_online{") ? 1 : 0;
  }
  // Per task: sent + received; started in stages 1-3; succeeded/failed in stages 2-3 (a quarter each).
  constexpr int kTasks = kRounds * 3;
  EXPECT_EQ(events, kTasks * 2 + kTasks * 3 / 4 + kTasks / 2);
  EXPECT_EQ(workers, tracked);
  std::printf("%d renders, %d overlapped writes, %zu slices\n", renders, overlapping, slices);
}

}  // namespace
}  // namespace stalk
