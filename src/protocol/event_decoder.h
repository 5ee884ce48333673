// Stalk — Celery monitoring server.
// EventDecoder: broker message bytes -> Events (celery-protocol.md §1.3, §2.3).
//
//   EventDecoder dec;
//   dec.DecodeKombuEnvelope(redis_payload, sink);              // Redis PUB/SUB payload (kombu envelope)
//   dec.DecodeBody("application/json", amqp_body, sink);       // AMQP: raw body, content type from props
//
// A body may be one event object or a list of them (task.multi). The sink is called once per good
// event; each bad one is reported through `on_reject` and the rest of the list still goes on.
// Decoding never throws and never allocates per event in the steady state (buffers are reused).
// Not thread-safe: one decoder per ingest thread.
#pragma once

#include <simdjson.h>

#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "common/function_ref.h"
#include "protocol/event.h"
#include "protocol/reject_reason.h"

namespace stalk {

class EventDecoder {
 public:
  using Sink = FunctionRef<void(const Event&)>;
  using RejectSink = FunctionRef<void(RejectReason, std::string_view detail)>;

  explicit EventDecoder(size_t max_message_bytes = 64u << 20);

  // Returns the number of events delivered to `sink`. The std::string overload parses in place, without
  // a copy, when the string's capacity already holds simdjson's padding (see PadForDecoding).
  size_t DecodeKombuEnvelope(std::string_view envelope, const Sink& sink, const RejectSink& on_reject);
  size_t DecodeKombuEnvelope(const std::string& envelope, const Sink& sink, const RejectSink& on_reject);
  size_t DecodeBody(std::string_view content_type, std::string_view body, const Sink& sink,
                    const RejectSink& on_reject);

 private:
  size_t DecodeEnvelopeAt(const char* data, size_t size, const Sink& sink, const RejectSink& on_reject);
  size_t DecodeJsonBody(std::string_view json, const Sink& sink, const RejectSink& on_reject);
  bool FillEvent(simdjson::dom::object obj, Event& ev, RejectReason& why);

  size_t max_message_bytes_;
  simdjson::dom::parser envelope_parser_;
  simdjson::dom::parser body_parser_;
  std::string padded_;               // input copied here with simdjson's padding
  std::string rest_;                 // the envelope minus its body (fast path)
  std::string body_padded_;          // decoded body
  std::deque<std::string> scratch_;  // non-string values rendered as JSON text (see FillEvent)
};

// Reserves simdjson's padding in `s` so EventDecoder can parse it in place (transports call this when
// they build a message).
void PadForDecoding(std::string& s);

}  // namespace stalk
