// Stalk — Celery monitoring server.
// fuzz_body: event bodies (one event object or a task.multi list) through EventDecoder::DecodeBody,
// applied to a small ClusterState and rendered (fuzz_targets.h).
#include <string>

#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {

int FuzzBody(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  EventDecoder decoder(1 << 20);
  ClusterState state(TinyStateOptions());
  Applier a(state);
  const size_t delivered = decoder.DecodeBody(
      "application/json", body, [&](const Event& e) { a.Apply(e); },
      [&](RejectReason r, std::string_view d) { a.Reject(r, d); });
  FuzzCheck(delivered == a.applied(), "DecodeBody returns the events it delivered");
  // Decoding again with the same (reused) decoder gives the same events: no state leaks between
  // messages through the decoder's buffers.
  size_t events2 = 0, rejects2 = 0;
  decoder.DecodeBody(
      "application/json", body, [&](const Event&) { ++events2; }, [&](RejectReason, std::string_view) { ++rejects2; });
  FuzzCheck(a.applied() == events2 && a.rejected() == rejects2, "decoding is repeatable");
  TickAndRender(state);
  return 0;
}

}  // namespace stalk::fuzz
