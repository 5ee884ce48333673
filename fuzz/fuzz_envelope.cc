// Stalk — Celery monitoring server.
// fuzz_envelope: Redis PUB/SUB payloads (kombu envelopes) through EventDecoder::DecodeKombuEnvelope,
// applied to a small ClusterState and rendered (fuzz_targets.h).
#include <string>

#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {

int FuzzEnvelope(const uint8_t* data, size_t size) {
  std::string envelope(reinterpret_cast<const char*>(data), size);
  PadForDecoding(envelope);  // in place, as the Redis transport hands it over
  EventDecoder decoder(1 << 20);
  ClusterState state(TinyStateOptions());
  Applier a(state);
  const size_t delivered = decoder.DecodeKombuEnvelope(
      envelope, [&](const Event& e) { a.Apply(e); }, [&](RejectReason r, std::string_view d) { a.Reject(r, d); });
  FuzzCheck(delivered == a.applied(), "DecodeKombuEnvelope returns the events it delivered");

  // The same bytes behind one leading space skip the decoder's fast path (body sliced out of the
  // text) and take the full parse. Whenever the full parse accepts the envelope, the fast path must
  // have delivered the same events.
  // (Counted only: a second ClusterState per input would halve the fuzzer's speed.)
  std::string spaced = " " + envelope;
  size_t events2 = 0, rejects2 = 0;
  bool full_parse_malformed = false;
  decoder.DecodeKombuEnvelope(
      std::string_view(spaced), [&](const Event&) { ++events2; },
      [&](RejectReason r, std::string_view) {
        full_parse_malformed = full_parse_malformed || r == RejectReason::kMalformedEnvelope;
        ++rejects2;
      });
  FuzzCheck(full_parse_malformed || (a.applied() == events2 && a.rejected() == rejects2),
            "fast path and full parse of an envelope agree");
  TickAndRender(state);
  return 0;
}

}  // namespace stalk::fuzz
