// Stalk — Celery monitoring server.
// LabelSpace: the values one label (task, worker, queue_name, exception, type) has taken, each given a
// dense slot at first sight together with its escaped text, so rendering copies bytes instead of
// escaping. The number of slots is capped: past the cap every new value shares one "other" slot and
// each folded observation is counted (stalk_metrics_label_overflow_total). Slots are never freed —
// the counters behind them must stay monotonic for the life of the process — so the cap bounds
// memory as well as series.
//
//   LabelSpace tasks(1000);
//   uint32_t s = tasks.SlotFor(task.name, state.Name(task.name));  // interned id + its text
//   out += tasks.escaped(s);
//
// Values are found by the state's interned id (cheap, for names and hostnames) or by text (for
// exception classes and event types, which the state does not intern). Not thread-safe: written
// under the state's write lock, read under its read lock.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

class LabelSpace {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr std::string_view kOther = "other";

  // Which cap a new value counts against. One space can hold two populations whose values may
  // coincide (worker hostnames and task-sent client hostnames: a worker sending a subtask is both),
  // each with its own cap, so one cannot crowd the other out; a value keeps the slot it got first.
  enum class Pool : uint8_t { kMain, kSecondary };

  // `cap`: most distinct values kept in the main pool (the "other" slot comes on top); 0 folds
  // everything. `secondary_cap`: the same for Pool::kSecondary.
  explicit LabelSpace(size_t cap, size_t secondary_cap = 0) : caps_{cap, secondary_cap} {}

  // Slot for the value whose interned id is `id` and text `value`, assigned at first sight; past the
  // pool's cap, the "other" slot (and one overflow counted for the pool). `id` may be any key unique
  // per text.
  uint32_t SlotFor(uint32_t id, std::string_view value, Pool pool = Pool::kMain);
  // Same, keyed by text only.
  uint32_t SlotFor(std::string_view value, Pool pool = Pool::kMain);
  // kNone when the value was never given a slot (or was folded into "other").
  uint32_t FindById(uint32_t id) const;
  uint32_t FindByText(std::string_view value) const;
  // The slot a value renders under: its own, else "other" when the space overflowed (a value past the
  // cap is not remembered), else kNone (never seen).
  uint32_t Resolve(uint32_t id, std::string_view value) const;

  // The value escaped for a label (\\, \", \n; invalid UTF-8 replaced by U+FFFD), without quotes.
  std::string_view escaped(uint32_t slot) const { return entries_[slot].escaped; }
  // Last time (epoch seconds) the value was seen; Touch keeps the maximum.
  double last_seen(uint32_t slot) const { return entries_[slot].last_seen; }
  void Touch(uint32_t slot, double when) {
    if (when > entries_[slot].last_seen) {
      entries_[slot].last_seen = when;
    }
  }
  uint32_t other_slot() const { return other_; }
  uint64_t overflows(Pool pool = Pool::kMain) const { return overflows_[static_cast<size_t>(pool)]; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string escaped;
    double last_seen = 0;
  };
  uint32_t Add(std::string_view value);
  uint32_t Overflow(Pool pool);

  std::array<size_t, 2> caps_;
  std::array<size_t, 2> used_{};  // slots held by real values of each pool (the overflow slot excluded)
  std::vector<Entry> entries_;
  absl::flat_hash_map<uint32_t, uint32_t> by_id_;
  absl::flat_hash_map<std::string, uint32_t> by_text_;
  uint32_t other_ = kNone;
  std::array<uint64_t, 2> overflows_{};
};

// Appends `value` escaped for a label value of the text formats (without quotes).
void AppendEscapedLabelValue(std::string& out, std::string_view value);

}  // namespace stalk
