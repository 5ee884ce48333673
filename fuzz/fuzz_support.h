// Stalk — Celery monitoring server.
// Helpers shared by the fuzz targets: invariant checks that abort with a message, a JSON validity
// oracle, applying decoded events to a state and rendering it, and the small live state the HTTP and
// query targets read. Fuzz-only code: not linked into stalk.
#pragma once

#include <string_view>

#include "protocol/event_decoder.h"
#include "state/cluster_state.h"
#include "state/shared_state.h"

namespace stalk::fuzz {

// Aborts with `what` when `ok` is false: libFuzzer saves the input, the corpus test fails.
void FuzzCheck(bool ok, std::string_view what);
// Takes the text up to the next '\n' (or the end) off the front of `in`; the '\n' is dropped.
std::string_view TakeLine(std::string_view& in);
// Aborts unless `json` is valid JSON (simdjson: also checks UTF-8).
void CheckValidJson(std::string_view json, std::string_view what);

// Limits low enough that a single fuzz input reaches eviction and truncation.
StateOptions TinyStateOptions();
// Applies what a decoder delivers to `state` (receive times from a fixed clock) and checks the
// decoder's guarantees per event and per reject:
//   Applier a(state);
//   decoder.DecodeBody(ct, body, [&](const Event& e) { a.Apply(e); },
//                      [&](RejectReason r, std::string_view d) { a.Reject(r, d); });
class Applier {
 public:
  explicit Applier(ClusterState& state) : state_(state) {}
  void Apply(const Event& ev);
  void Reject(RejectReason why, std::string_view detail);
  size_t applied() const { return applied_; }
  size_t rejected() const { return rejected_; }

 private:
  ClusterState& state_;
  size_t applied_ = 0;
  size_t rejected_ = 0;
};
// Ticks liveness, renders every task and worker (must be valid JSON), then ticks far ahead (workers
// go offline, unfinished tasks are flagged lost) and renders again.
void TickAndRender(ClusterState& state);

// A live state with tasks in every state (custom, retried, text ids, children, unicode fields) on
// three workers, one of them offline. Built once; callers only read it.
SharedState& SampleState();
// The fixed wall clock of SampleState's readers.
double SampleNow();

}  // namespace stalk::fuzz
