// Stalk — Celery monitoring server.
// Why a broker message (or one event in it) was not applied. Numbers are stable: they index counters.
#pragma once

#include <cstdint>
#include <string_view>

namespace stalk {

enum class RejectReason : uint8_t {
  kMalformedEnvelope = 0,  // not a kombu envelope (not JSON, no body, wrong types)
  kUnsupportedSerializer,  // content-type other than JSON (pickle, msgpack, yaml…)
  kBadBodyEncoding,        // body_encoding unknown, or base64 that does not decode
  kMalformedBody,          // body is not valid JSON
  kNotAnEvent,             // JSON value that is not an event object (no "type", wrong types)
  kMissingField,           // task event without uuid, worker event without hostname
  kOversized,              // message larger than --max_event_bytes
  kCount,
};

constexpr std::string_view RejectReasonName(RejectReason r) {
  switch (r) {
    case RejectReason::kMalformedEnvelope:
      return "malformed_envelope";
    case RejectReason::kUnsupportedSerializer:
      return "unsupported_serializer";
    case RejectReason::kBadBodyEncoding:
      return "bad_body_encoding";
    case RejectReason::kMalformedBody:
      return "malformed_body";
    case RejectReason::kNotAnEvent:
      return "not_an_event";
    case RejectReason::kMissingField:
      return "missing_field";
    case RejectReason::kOversized:
      return "oversized";
    case RejectReason::kCount:
      break;
  }
  return "unknown";
}

}  // namespace stalk
