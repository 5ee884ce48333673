// Stalk — Celery monitoring server.
#include "state/task_query.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>

namespace stalk {
namespace {

struct SearchTerms {
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> kwargs;
  std::vector<std::string> states;
  std::optional<std::string> result;
  std::optional<std::string> any;
  bool empty() const { return args.empty() && kwargs.empty() && states.empty() && !result && !any; }
};

std::string StripQuotes(std::string_view v) {
  while (!v.empty() && (v.front() == '"' || v.front() == ' '))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == ' '))
    v.remove_suffix(1);
  return std::string(v);
}

// Splits on whitespace and commas, keeping quoted runs together (Flower's search regexp).
std::vector<std::string_view> SplitTerms(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (std::isspace(static_cast<unsigned char>(s[i])) || s[i] == ','))
      ++i;
    const size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])) && s[i] != ',') {
      if (s[i] == '"') {
        ++i;
        while (i < s.size() && s[i] != '"') {
          i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
        }
      }
      if (i < s.size())
        ++i;
    }
    if (i > start)
      out.push_back(s.substr(start, i - start));
  }
  return out;
}

SearchTerms ParseSearch(std::string_view raw) {
  SearchTerms t;
  for (std::string_view part : SplitTerms(raw)) {
    if (part.starts_with("result:")) {
      t.result = StripQuotes(part.substr(7));
    } else if (part.starts_with("args:")) {
      t.args.push_back(StripQuotes(part.substr(5)));
    } else if (part.starts_with("kwargs:")) {
      std::string_view kv = part.substr(7);
      const size_t eq = kv.find('=');
      if (eq != std::string_view::npos) {
        t.kwargs.emplace_back(StripQuotes(kv.substr(0, eq)), StripQuotes(kv.substr(eq + 1)));
      }
    } else if (part.starts_with("state:")) {
      t.states.push_back(StripQuotes(part.substr(6)));
    } else {
      t.any = StripQuotes(part);
    }
  }
  return t;
}

bool Contains(std::string_view hay, std::string_view needle) { return hay.find(needle) != std::string_view::npos; }

bool ContainsId(const Task& t, std::string_view needle) {
  char buf[36];
  return Contains(t.IdView(buf), needle);
}

// Flower's stringified_dict_contains_value: finds `'key': value` in a repr'd dict.
bool KwargsContain(std::string_view dict, std::string_view key, std::string_view value) {
  size_t k = dict.find(key);
  if (k == std::string_view::npos)
    return false;
  size_t start = k + key.size() + 3;
  if (start > dict.size())
    return false;
  size_t end = dict.find(',', start);
  if (end == std::string_view::npos)
    end = dict.find('}', start);
  if (end == std::string_view::npos)
    return false;
  std::string_view v = dict.substr(start, end - start);
  while (!v.empty() && (v.front() == '"' || v.front() == '\''))
    v.remove_prefix(1);
  while (!v.empty() && (v.back() == '"' || v.back() == '\''))
    v.remove_suffix(1);
  return v == value;
}

// A uuid's text is lower-case hex and dashes; a needle with anything else never matches one.
bool CouldBeInUuid(std::string_view needle) {
  if (needle.size() > 36) {
    return false;
  }
  for (char c : needle) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) {
      return false;
    }
  }
  return true;
}

// Per-query search state. Names, workers and custom states are interned, so whether the free text
// occurs in one is computed once per distinct string (a million tasks share a few hundred).
class SearchMatcher {
 public:
  SearchMatcher(const ClusterState& st, std::string_view raw)
      : st_(st),
        s_(ParseSearch(raw)),
        interned_(s_.any ? st.StringCount() : 0, -1),
        id_possible_(s_.any && CouldBeInUuid(*s_.any)) {}

  bool empty() const { return s_.empty(); }
  // True when matching reads the task's own text fields (worth prefetching them).
  bool reads_text() const { return s_.any || s_.result || !s_.kwargs.empty() || !s_.args.empty(); }

  bool Matches(const Task& t) {
    if (s_.empty()) {
      return true;
    }
    const std::string_view state = st_.StateName(t);
    for (const auto& x : s_.states) {
      if (state == x) {
        return true;
      }
    }
    if (s_.any) {
      const std::string& a = *s_.any;
      if ((t.name != kNoId && Interned(t.name)) || Contains(state, a) || Contains(t.args.view(), a) ||
          Contains(t.kwargs.view(), a) || Contains(t.result.view(), a) || (t.worker != kNoId && Interned(t.worker)) ||
          ((id_possible_ || t.text_ids) && ContainsId(t, a))) {
        return true;
      }
    }
    if (s_.result && !t.result.is_null() && Contains(t.result.view(), *s_.result)) {
      return true;
    }
    if (!s_.kwargs.empty()) {
      bool all = true;
      for (const auto& [k, v] : s_.kwargs) {
        all = all && KwargsContain(t.kwargs.view(), k, v);
      }
      if (all) {
        return true;
      }
    }
    if (!s_.args.empty()) {
      bool all = true;
      for (const auto& a : s_.args) {
        all = all && Contains(t.args.view(), a);
      }
      if (all) {
        return true;
      }
    }
    return false;
  }

 private:
  bool Interned(uint32_t id) {
    if (id >= interned_.size()) {
      return Contains(st_.Name(id), *s_.any);
    }
    int8_t& m = interned_[id];
    if (m < 0) {
      m = Contains(st_.Name(id), *s_.any) ? 1 : 0;
    }
    return m == 1;
  }

  const ClusterState& st_;
  const SearchTerms s_;
  std::vector<int8_t> interned_;  // -1 unknown, 0 no, 1 yes; by string id
  const bool id_possible_;
};

// ForEachTaskNewestFirst, with each task's text fields prefetched kDepth tasks before `visit` reads
// them: a full-text scan of 1M tasks is bound by the cache misses on those heap blocks, and issuing
// them ahead overlaps them (measured in bench/web_bench: search with no match).
template <typename Visit>
void ForEachNewestFirstPrefetched(const ClusterState& st, bool prefetch, Visit&& visit) {
  if (!prefetch) {
    st.ForEachTaskNewestFirst(visit);
    return;
  }
  constexpr size_t kDepth = 16;  // enough loads in flight to cover a miss at scan speed
  const Task* window[kDepth];
  size_t head = 0, count = 0;
  bool stopped = false;
  st.ForEachTaskNewestFirst([&](const Task& t) {
    t.args.Prefetch();
    t.kwargs.Prefetch();
    t.result.Prefetch();
    if (count < kDepth) {
      window[count++] = &t;
      return true;
    }
    const Task* due = window[head];
    window[head] = &t;
    head = (head + 1) % kDepth;
    stopped = !visit(*due);
    return !stopped;
  });
  for (size_t i = 0; i < count && !stopped; ++i) {
    stopped = !visit(*window[(head + i) % kDepth]);
  }
}

enum class SortKey { kNone, kName, kState, kReceived, kStarted, kSucceeded, kRuntime, kTimestamp };

}  // namespace

std::optional<double> ParseQueryTime(std::string_view text) {
  double epoch;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), epoch);
  if (ec == std::errc() && p == text.data() + text.size()) {
    return epoch;
  }
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%d %H:%M", &tm);
  if (!end || *end != '\0') {
    return std::nullopt;
  }
  tm.tm_isdst = -1;
  return static_cast<double>(std::mktime(&tm));
}

Result<std::vector<const Task*>> RunTaskQuery(const ClusterState& st, const TaskQuery& q) {
  std::string_view sort = q.sort_by;
  bool descending = false;
  if (sort.starts_with('-')) {
    descending = true;
    sort.remove_prefix(1);
  }
  SortKey key = SortKey::kNone;
  if (sort.empty())
    key = SortKey::kNone;
  else if (sort == "name")
    key = SortKey::kName;
  else if (sort == "state")
    key = SortKey::kState;
  else if (sort == "received")
    key = SortKey::kReceived;
  else if (sort == "started")
    key = SortKey::kStarted;
  else if (sort == "succeeded")
    key = SortKey::kSucceeded;
  else if (sort == "runtime")
    key = SortKey::kRuntime;
  else if (sort == "timestamp")
    key = SortKey::kTimestamp;
  else
    return Error{"invalid sort_by: use name, state, received, started, succeeded, runtime or timestamp"};

  auto active = [](const std::string& f) { return !f.empty() && f != "All"; };
  uint32_t name_id = kNoId, worker_id = kNoId;
  if (active(q.taskname) && (name_id = st.FindString(q.taskname)) == kNoId)
    return std::vector<const Task*>{};
  if (active(q.workername) && (worker_id = st.FindString(q.workername)) == kNoId) {
    return std::vector<const Task*>{};
  }
  std::optional<TaskState> state_filter;
  uint32_t custom_state = kNoId;
  if (active(q.state)) {
    TaskState s;
    if (ParseTaskState(q.state, s)) {
      state_filter = s;
    } else if ((custom_state = st.FindString(q.state)) != kNoId) {
      state_filter = TaskState::kCustom;
    } else {
      return std::vector<const Task*>{};
    }
  }
  SearchMatcher search(st, q.search);

  auto matches = [&](const Task& t) {
    if (name_id != kNoId && t.name != name_id)
      return false;
    // Flower keeps tasks with no worker yet when filtering by worker; so do we.
    if (worker_id != kNoId && t.worker != kNoId && t.worker != worker_id)
      return false;
    if (state_filter && (t.state != *state_filter || (custom_state != kNoId && t.custom_state != custom_state))) {
      return false;
    }
    if (q.received_start && t.received > 0 && t.received < *q.received_start)
      return false;
    if (q.received_end && t.received > 0 && t.received > *q.received_end)
      return false;
    if (q.started_start && t.started > 0 && t.started < *q.started_start)
      return false;
    if (q.started_end && t.started > 0 && t.started > *q.started_end)
      return false;
    return search.Matches(t);
  };
  const bool prefetch = search.reads_text();

  // Flower treats limit=0 as no limit; offset + limit saturates.
  const size_t want = (q.limit && *q.limit > 0 && *q.limit <= SIZE_MAX - q.offset) ? q.offset + *q.limit : SIZE_MAX;
  std::vector<const Task*> out;
  if (key == SortKey::kNone) {
    size_t seen = 0;
    ForEachNewestFirstPrefetched(st, prefetch, [&](const Task& t) {
      if (!matches(t))
        return true;
      if (seen++ >= q.offset)
        out.push_back(&t);
      return seen < want;  // want >= 1 here, so this never over-collects
    });
    return out;
  }

  // Sorted: one pass collects (key, task) for the matches, then a partial sort of the first
  // offset + limit. Keys are numbers — names by their rank among the sorted task names, states by
  // their first 8 bytes — so comparisons never touch the tasks or their strings.
  std::vector<uint32_t> name_rank;
  if (key == SortKey::kName) {
    name_rank.assign(st.StringCount(), 0);
    uint32_t rank = 1;  // 0: no name, sorts first as Python's '' does
    for (std::string_view n : st.TaskTypes()) {
      name_rank[st.FindString(n)] = rank++;
    }
  }
  auto state_key = [&](const Task& t) {
    const std::string_view n = st.StateName(t);
    uint64_t k = 0;
    for (size_t i = 0; i < 8; ++i) {
      k = k << 8 | (i < n.size() ? static_cast<unsigned char>(n[i]) : 0);
    }
    return static_cast<double>(k >> 11);  // 53 significant bits: exact in a double, order kept
  };
  auto sort_key = [&](const Task& t) -> double {
    switch (key) {
      case SortKey::kName:
        return t.name == kNoId ? 0 : name_rank[t.name];
      case SortKey::kState:
        return state_key(t);
      case SortKey::kReceived:
        return t.received;
      case SortKey::kStarted:
        return t.started;
      case SortKey::kSucceeded:
        return t.succeeded;
      case SortKey::kRuntime:
        return t.runtime < 0 ? 0 : t.runtime;
      case SortKey::kTimestamp:
        return t.timestamp;
      case SortKey::kNone:
        break;
    }
    return 0;
  };
  struct Entry {
    double key;
    const Task* task;
  };
  std::vector<Entry> entries;
  ForEachNewestFirstPrefetched(st, prefetch, [&](const Task& t) {
    if (matches(t))
      entries.push_back({descending ? -sort_key(t) : sort_key(t), &t});
    return true;
  });
  // Ties keep the base order (newest first) in both directions, as Python's stable sorted() does.
  auto less = [](const Entry& a, const Entry& b) { return a.key != b.key ? a.key < b.key : a.task->seq > b.task->seq; };
  const size_t n = std::min(want, entries.size());
  std::partial_sort(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(n), entries.end(), less);
  for (size_t i = q.offset; i < n; ++i) {
    out.push_back(entries[i].task);
  }
  return out;
}

}  // namespace stalk
