// Stalk — Celery monitoring server.
// Row codec: how a task, worker or event crosses from the ingest thread to the store thread. The
// ingest side (a StateListener, under the state's write lock) must be quick, so it appends a flat
// byte encoding of the record to a reused buffer — one memcpy-like pass, no allocation per row — and
// the store thread decodes it into records (state/task_record.h), coalescing repeated updates of the
// same task within a batch: the last record of a task is its whole merged state, so earlier ones
// are redundant.
//
// Encoding (host byte order; never stored, so no versioning): u32 length of the whole row, u8 kind,
// then the fields in a fixed order; a string is u32 length + bytes, length 0xFFFFFFFF = null.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/event.h"
#include "store/store.h"

namespace stalk {

class ClusterState;
struct Task;
struct Worker;

enum class RowKind : uint8_t { kTask = 1, kWorker = 2, kEvent = 3 };

// Appends one row. `transition`: the event moved the task to a new state (recorded in its timeline).
void EncodeTaskRow(const ClusterState& st, const Task& t, bool transition, std::string& out);
void EncodeWorkerRow(const Worker& w, std::string& out);
// The event with every field it carried, as JSON (for the events table).
void EncodeEventRow(const Event& ev, double received_at, std::string& out);

// Builds a WriteBatch from buffers of encoded rows, keeping one record per task id and per hostname
// (the latest). Coalescing happens before decoding: Add only indexes each task's last row (and
// collects state changes for the timeline); Take decodes each task's record once.
class BatchBuilder {
 public:
  // Scans every row in `bytes` (a concatenation of encoded rows), kept until Take. Returns rows
  // scanned; stops at a malformed row (a bug, not input: rows are made by Encode*).
  size_t Add(std::string bytes);
  size_t rows_added() const { return rows_added_; }
  // The batch so far; resets. Tasks stay in the order they first appeared in the batch (SQLite's
  // rowids then follow creation order, which restores read back); transitions are sorted by task id
  // (consecutive inserts hit the same B-tree pages). PostgreSQL orders by key itself.
  WriteBatch Take(double written_at);
  // Buffers given to Add, released by Take, for the caller to reuse (RowQueue::Recycle).
  std::vector<std::string>& spent() { return spent_; }

 private:
  WriteBatch batch_;                         // transitions, workers and events so far (tasks are built by Take)
  std::deque<std::string> held_;             // this batch's buffers
  std::vector<std::string_view> task_rows_;  // each task's last row, first-seen order
  absl::flat_hash_map<std::string_view, size_t> task_index_;  // id (into held_) -> task_rows_ slot
  absl::flat_hash_map<std::string, size_t> worker_index_;     // hostname -> batch_.workers slot
  std::vector<std::string> spent_;
  size_t rows_added_ = 0;
};

}  // namespace stalk
