// Stalk — Celery monitoring server.
// fuzz_task_query: RunTaskQuery (Flower's /api/tasks filters, search, sort and paging) with every
// TaskQuery field from the input, over a small live state (fuzz_targets.h has the input format).
#include <charconv>
#include <set>
#include <string>

#include "common/json_writer.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "state/task_json.h"
#include "state/task_query.h"

namespace stalk::fuzz {
namespace {

std::optional<size_t> Number(std::string_view s) {
  unsigned long long v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc())
    return std::nullopt;
  return static_cast<size_t>(v);
}

bool IsSortKey(std::string_view s) {
  if (s.starts_with('-'))
    s.remove_prefix(1);
  return s.empty() || s == "name" || s == "state" || s == "received" || s == "started" || s == "succeeded" ||
         s == "runtime" || s == "timestamp";
}

}  // namespace

int FuzzTaskQuery(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  TaskQuery q;
  q.limit = Number(TakeLine(in));
  q.offset = Number(TakeLine(in)).value_or(0);
  q.sort_by = std::string(TakeLine(in));
  q.workername = std::string(TakeLine(in));
  q.taskname = std::string(TakeLine(in));
  q.state = std::string(TakeLine(in));
  for (auto* t : {&q.received_start, &q.received_end, &q.started_start, &q.started_end}) {
    const std::string_view f = TakeLine(in);
    if (!f.empty())
      *t = ParseQueryTime(f);
  }
  q.search = std::string(in);

  auto st = SampleState().Read();
  auto tasks = RunTaskQuery(*st, q);
  FuzzCheck(tasks.ok() == IsSortKey(q.sort_by), "only an unknown sort key is an error");
  if (!tasks)
    return 0;
  if (q.limit && *q.limit > 0) {
    FuzzCheck(tasks->size() <= *q.limit, "at most `limit` tasks");
  }
  const bool unfiltered = (q.workername.empty() || q.workername == "All") &&
                          (q.taskname.empty() || q.taskname == "All") && (q.state.empty() || q.state == "All") &&
                          !q.received_start && !q.received_end && !q.started_start && !q.started_end &&
                          q.search.find_first_not_of(" \t\n\r\f\v,") == std::string::npos;
  if (unfiltered) {
    const size_t count = st->task_count();
    size_t expected = q.offset >= count ? 0 : count - q.offset;
    if (q.limit && *q.limit > 0)
      expected = std::min(expected, *q.limit);
    FuzzCheck(tasks->size() == expected, "an unfiltered page has min(limit, count - offset) tasks");
  }
  std::set<const Task*> seen;
  for (size_t i = 0; i < tasks->size(); ++i) {
    const Task* t = (*tasks)[i];
    FuzzCheck(seen.insert(t).second, "no task twice in one page");
    FuzzCheck(st->FindTask(t->IdString()) == t, "every result is a live task");
    if (q.sort_by.empty() && i > 0) {
      FuzzCheck((*tasks)[i - 1]->seq > t->seq, "unsorted results are newest first");
    }
    JsonWriter w;
    WriteTaskJson(*st, *t, w);
    CheckValidJson(w.str(), "task JSON");
  }
  std::string_view sort = q.sort_by;
  const bool descending = sort.starts_with('-');
  if (descending)
    sort.remove_prefix(1);
  for (size_t i = 1; i < tasks->size() && (sort == "received" || sort == "started"); ++i) {
    const Task& a = *(*tasks)[i - 1];
    const Task& b = *(*tasks)[i];
    const double ka = sort == "received" ? a.received : a.started;
    const double kb = sort == "received" ? b.received : b.started;
    FuzzCheck(descending ? ka >= kb : ka <= kb, "sorted results are in order");
  }
  return 0;
}

}  // namespace stalk::fuzz
