// Stalk — Celery monitoring server.
#include "store/row_codec.h"

#include <algorithm>
#include <cstring>

#include "common/json_writer.h"
#include "state/cluster_state.h"

namespace stalk {
namespace {

constexpr uint32_t kNullLen = 0xFFFFFFFFu;

// Row flags (in-memory only).
constexpr uint8_t kLost = 1, kRequeue = 2, kTruncated = 4, kHasStateEvent = 8, kTransition = 16, kLoadavg = 32,
                  kOfflineEvent = 64;

template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}

void PutStr(std::string& out, std::string_view s) {
  Put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s);
}

void PutNull(std::string& out) { Put<uint32_t>(out, kNullLen); }

void PutText(std::string& out, const CompactString& s) {
  if (s.is_null()) {
    PutNull(out);
  } else {
    PutStr(out, s.view());
  }
}

void PutInterned(std::string& out, const ClusterState& st, uint32_t id) {
  if (id == kNoId) {
    PutNull(out);
  } else {
    PutStr(out, st.Name(id));
  }
}

void PutRef(std::string& out, bool has, const Uuid& bytes, const CompactString& text) {
  if (!has) {
    PutNull(out);
  } else if (!text.is_null()) {
    PutStr(out, text.view());
  } else {
    char buf[36];
    FormatUuid(bytes, buf);
    PutStr(out, std::string_view(buf, 36));
  }
}

// Starts a row: reserves its length word; FinishRow fills it in.
size_t BeginRow(std::string& out, RowKind kind) {
  const size_t start = out.size();
  Put<uint32_t>(out, 0);
  Put<uint8_t>(out, static_cast<uint8_t>(kind));
  return start;
}

void FinishRow(std::string& out, size_t start) {
  const auto len = static_cast<uint32_t>(out.size() - start);
  std::memcpy(out.data() + start, &len, sizeof len);
}

// Reads what Put wrote; latches `ok = false` past the end.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  template <typename T>
  T Get() {
    T v{};
    if (pos_ + sizeof(T) > s_.size()) {
      ok_ = false;
      return v;
    }
    std::memcpy(&v, s_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::optional<std::string> Opt() {
    const auto n = Get<uint32_t>();
    if (n == kNullLen || !ok_) {
      return std::nullopt;
    }
    if (pos_ + n > s_.size()) {
      ok_ = false;
      return std::nullopt;
    }
    std::string v(s_.substr(pos_, n));
    pos_ += n;
    return v;
  }
  std::string Str() { return Opt().value_or(std::string()); }
  // A string field without copying it (null reads as empty).
  std::string_view View() {
    const auto n = Get<uint32_t>();
    if (n == kNullLen || !ok_) {
      return {};
    }
    if (pos_ + n > s_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  void Skip(size_t bytes) {
    if (pos_ + bytes > s_.size()) {
      ok_ = false;
    } else {
      pos_ += bytes;
    }
  }
  bool ok() const { return ok_; }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void WriteOpt(JsonWriter& w, std::string_view key, const OptStr& s) {
  if (!s.present) {
    return;
  }
  w.Key(key);
  if (s.null) {
    w.Null();
  } else {
    w.String(s.value);
  }
}

}  // namespace

void EncodeTaskRow(const ClusterState& st, const Task& t, bool transition, std::string& out) {
  const size_t start = BeginRow(out, RowKind::kTask);
  char idbuf[36];
  PutStr(out, t.IdView(idbuf));
  PutStr(out, st.StateName(t));
  for (uint32_t id : {t.name, t.worker, t.client, t.queue, t.exchange, t.routing_key}) {
    PutInterned(out, st, id);
  }
  for (double v : {t.sent, t.received, t.started, t.succeeded, t.failed, t.retried, t.revoked, t.rejected, t.timestamp,
                   t.lost_at, t.runtime}) {
    Put<double>(out, v);
  }
  Put<int32_t>(out, t.retries);
  Put<int64_t>(out, t.clock);
  Put<uint8_t>(out,
               static_cast<uint8_t>((t.lost ? kLost : 0) | (t.requeue ? kRequeue : 0) | (t.truncated ? kTruncated : 0) |
                                    (t.has_state_event ? kHasStateEvent : 0) | (transition ? kTransition : 0)));
  for (const CompactString* s : {&t.args, &t.kwargs, &t.result, &t.exception, &t.traceback, &t.eta, &t.expires}) {
    PutText(out, *s);
  }
  PutRef(out, t.has_root, t.root, t.root_text());
  PutRef(out, t.has_parent, t.parent, t.parent_text());
  FinishRow(out, start);
}

void EncodeWorkerRow(const Worker& w, std::string& out) {
  const size_t start = BeginRow(out, RowKind::kWorker);
  PutStr(out, w.hostname);
  for (double v : {w.freq, w.last_heartbeat, w.offline_since, w.utcoffset, w.loadavg[0], w.loadavg[1], w.loadavg[2]}) {
    Put<double>(out, v);
  }
  for (int64_t v : {w.pid, w.clock, w.active, w.processed}) {
    Put<int64_t>(out, v);
  }
  Put<uint64_t>(out, w.events);
  Put<uint64_t>(out, w.lost_tasks);
  Put<uint8_t>(out, static_cast<uint8_t>((w.has_loadavg ? kLoadavg : 0) | (w.offline_event ? kOfflineEvent : 0)));
  PutStr(out, w.sw_ident);
  PutStr(out, w.sw_ver);
  PutStr(out, w.sw_sys);
  FinishRow(out, start);
}

void EncodeEventRow(const Event& ev, double received_at, std::string& out) {
  const size_t start = BeginRow(out, RowKind::kEvent);
  Put<double>(out, ev.has_timestamp ? ev.timestamp : received_at);
  Put<double>(out, received_at);
  Put<int64_t>(out, ev.clock);
  PutStr(out, ev.type);
  PutStr(out, ev.uuid);
  PutStr(out, ev.hostname);
  JsonWriter w;
  w.BeginObject();
  w.Field("type", ev.type);
  if (!ev.uuid.empty())
    w.Field("uuid", ev.uuid);
  if (!ev.hostname.empty())
    w.Field("hostname", ev.hostname);
  if (ev.has_timestamp)
    w.Field("timestamp", ev.timestamp);
  if (ev.has_clock) {
    w.Key("clock");
    w.Int(ev.clock);
  }
  if (ev.pid) {
    w.Key("pid");
    w.Int(ev.pid);
  }
  w.Field("utcoffset", ev.utcoffset);
  WriteOpt(w, "name", ev.name);
  WriteOpt(w, "args", ev.args);
  WriteOpt(w, "kwargs", ev.kwargs);
  WriteOpt(w, "result", ev.result);
  WriteOpt(w, "exception", ev.exception);
  WriteOpt(w, "traceback", ev.traceback);
  WriteOpt(w, "root_id", ev.root_id);
  WriteOpt(w, "parent_id", ev.parent_id);
  WriteOpt(w, "eta", ev.eta);
  WriteOpt(w, "expires", ev.expires);
  WriteOpt(w, "exchange", ev.exchange);
  WriteOpt(w, "routing_key", ev.routing_key);
  WriteOpt(w, "queue", ev.queue);
  WriteOpt(w, "signum", ev.signum);
  if (ev.retries) {
    w.Key("retries");
    w.Int(*ev.retries);
  }
  if (ev.runtime)
    w.Field("runtime", *ev.runtime);
  for (auto [key, v] :
       {std::pair{"requeue", ev.requeue}, std::pair{"terminated", ev.terminated}, std::pair{"expired", ev.expired}}) {
    if (v) {
      w.Key(key);
      w.Bool(*v);
    }
  }
  if (ev.freq)
    w.Field("freq", *ev.freq);
  if (ev.active) {
    w.Key("active");
    w.Int(*ev.active);
  }
  if (ev.processed) {
    w.Key("processed");
    w.Int(*ev.processed);
  }
  if (ev.loadavg) {
    w.Key("loadavg");
    w.BeginArray();
    for (double v : *ev.loadavg)
      w.Double(v);
    w.EndArray();
  }
  WriteOpt(w, "sw_ident", ev.sw_ident);
  WriteOpt(w, "sw_ver", ev.sw_ver);
  WriteOpt(w, "sw_sys", ev.sw_sys);
  w.EndObject();
  PutStr(out, w.str());
  FinishRow(out, start);
}

// ------------------------------------------------------------------ decoding

namespace {

// The whole record of a task row's payload (after the 5-byte header).
TaskRecord DecodeTask(std::string_view payload) {
  Reader r(payload);
  TaskRecord t;
  t.id = r.Str();
  t.state = r.Str();
  for (auto* f : {&t.name, &t.worker, &t.client, &t.queue, &t.exchange, &t.routing_key}) {
    *f = r.Opt();
  }
  for (double* f : {&t.sent, &t.received, &t.started, &t.succeeded, &t.failed, &t.retried, &t.revoked, &t.rejected,
                    &t.timestamp, &t.lost_at, &t.runtime}) {
    *f = r.Get<double>();
  }
  t.retries = r.Get<int32_t>();
  t.clock = r.Get<int64_t>();
  const auto flags = r.Get<uint8_t>();
  t.lost = flags & kLost;
  t.requeue = flags & kRequeue;
  t.truncated = flags & kTruncated;
  t.has_state_event = flags & kHasStateEvent;
  for (auto* f :
       {&t.args, &t.kwargs, &t.result, &t.exception, &t.traceback, &t.eta, &t.expires, &t.root_id, &t.parent_id}) {
    *f = r.Opt();
  }
  return t;
}

}  // namespace

size_t BatchBuilder::Add(std::string bytes) {
  held_.push_back(std::move(bytes));  // a deque: the views below stay valid until Take
  std::string_view rest = held_.back();
  size_t n = 0;
  while (rest.size() >= 5) {
    uint32_t len;
    std::memcpy(&len, rest.data(), sizeof len);
    if (len < 5 || len > rest.size()) {
      break;
    }
    const std::string_view payload = rest.substr(5, len - 5);
    const auto kind = static_cast<RowKind>(static_cast<uint8_t>(rest[4]));
    rest.remove_prefix(len);
    Reader r(payload);
    if (kind == RowKind::kTask) {
      // Only what coalescing needs: the id, and the state change for the timeline. The record itself
      // is decoded in Take, once, from the task's last row.
      const std::string_view id = r.View();
      const std::string_view state = r.View();
      for (int i = 0; i < 6; ++i) {
        const auto len_or_null = r.Get<uint32_t>();
        r.Skip(len_or_null == kNullLen ? 0 : len_or_null);
      }
      r.Skip(8 * sizeof(double));
      const double timestamp = r.Get<double>();
      r.Skip(2 * sizeof(double) + sizeof(int32_t) + sizeof(int64_t));
      const auto flags = r.Get<uint8_t>();
      if (!r.ok())
        break;
      if (flags & kTransition) {
        batch_.transitions.push_back({std::string(id), std::string(state), timestamp});
      }
      auto [it, inserted] = task_index_.try_emplace(id, task_rows_.size());
      if (inserted) {
        task_rows_.push_back(payload);
      } else {
        task_rows_[it->second] = payload;
      }
    } else if (kind == RowKind::kWorker) {
      WorkerRecord w;
      w.hostname = r.Str();
      for (double* f :
           {&w.freq, &w.last_heartbeat, &w.offline_since, &w.utcoffset, &w.loadavg[0], &w.loadavg[1], &w.loadavg[2]}) {
        *f = r.Get<double>();
      }
      for (int64_t* f : {&w.pid, &w.clock, &w.active, &w.processed}) {
        *f = r.Get<int64_t>();
      }
      w.events = r.Get<uint64_t>();
      w.lost_tasks = r.Get<uint64_t>();
      const auto flags = r.Get<uint8_t>();
      w.has_loadavg = flags & kLoadavg;
      w.offline_event = flags & kOfflineEvent;
      w.sw_ident = r.Str();
      w.sw_ver = r.Str();
      w.sw_sys = r.Str();
      if (!r.ok())
        break;
      auto [it, inserted] = worker_index_.try_emplace(w.hostname, batch_.workers.size());
      if (inserted) {
        batch_.workers.push_back(std::move(w));
      } else {
        batch_.workers[it->second] = std::move(w);
      }
    } else if (kind == RowKind::kEvent) {
      EventRecord e;
      e.at = r.Get<double>();
      e.received_at = r.Get<double>();
      e.clock = r.Get<int64_t>();
      e.type = r.Str();
      e.uuid = r.Str();
      e.hostname = r.Str();
      e.fields_json = r.Str();
      if (!r.ok())
        break;
      batch_.events.push_back(std::move(e));
    } else {
      break;
    }
    ++n;
  }
  rows_added_ += n;
  return n;
}

WriteBatch BatchBuilder::Take(double written_at) {
  WriteBatch out = std::move(batch_);
  batch_ = WriteBatch{};
  out.tasks.reserve(task_rows_.size());
  for (std::string_view payload : task_rows_) {
    out.tasks.push_back(DecodeTask(payload));
  }
  task_rows_.clear();
  task_index_.clear();
  worker_index_.clear();
  rows_added_ = 0;
  while (!held_.empty()) {
    spent_.push_back(std::move(held_.front()));
    held_.pop_front();
  }
  std::stable_sort(out.transitions.begin(), out.transitions.end(),
                   [](const TransitionRecord& a, const TransitionRecord& b) { return a.task_id < b.task_id; });
  std::sort(out.workers.begin(), out.workers.end(),
            [](const WorkerRecord& a, const WorkerRecord& b) { return a.hostname < b.hostname; });
  out.written_at = written_at;
  return out;
}

}  // namespace stalk
