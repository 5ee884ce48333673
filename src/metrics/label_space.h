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

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

class LabelSpace {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr std::string_view kOther = "other";

  // `cap`: most distinct values kept (the "other" slot comes on top); 0 folds everything.
  explicit LabelSpace(size_t cap) : cap_(cap) {}

  // Slot for the value whose interned id is `id` and text `value`, assigned at first sight; past the
  // cap, the "other" slot (and one overflow counted). `id` may be any key unique per text.
  uint32_t SlotFor(uint32_t id, std::string_view value);
  // Same, keyed by text only.
  uint32_t SlotFor(std::string_view value);
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
  uint64_t overflows() const { return overflows_; }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string escaped;
    double last_seen = 0;
  };
  uint32_t Add(std::string_view value);
  uint32_t Overflow();

  size_t cap_;
  size_t real_ = 0;  // slots held by real values (the overflow slot excluded)
  std::vector<Entry> entries_;
  absl::flat_hash_map<uint32_t, uint32_t> by_id_;
  absl::flat_hash_map<std::string, uint32_t> by_text_;
  uint32_t other_ = kNone;
  uint64_t overflows_ = 0;
};

// Appends `value` escaped for a label value of the text formats (without quotes).
void AppendEscapedLabelValue(std::string& out, std::string_view value);

}  // namespace stalk
