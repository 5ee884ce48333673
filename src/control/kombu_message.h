// Stalk — Celery monitoring server.
// KombuMessage: one message as kombu's producers describe it — a serialized JSON body plus
// application headers and AMQP-style properties — and its Redis form, kombu's virtual-transport
// envelope (celery-protocol.md §1.3): {"body": base64(body), "content-encoding", "content-type",
// "headers", "properties": {..., "delivery_info": {exchange, routing_key}, "body_encoding": "base64",
// "delivery_tag": <uuid4>}}. delivery_tag and delivery_info are mandatory for anything a worker
// consumes (a 5.2 worker dies without them), so the encoder always writes both.
// The AMQP transport will map the same struct onto basic properties (no envelope, no base64).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/result.h"

namespace stalk {

struct KombuMessage {
  std::string body;  // serialized payload (JSON text)
  nlohmann::json headers = nlohmann::json::object();
  // AMQP-style properties (delivery_mode, priority, correlation_id, reply_to, expiration...).
  nlohmann::json properties = nlohmann::json::object();
  std::string content_type = "application/json";
  std::string content_encoding = "utf-8";
};

// The Redis envelope text of `m`, routed as (exchange, routing_key), with a fresh delivery tag unless
// `delivery_tag` is given (tests pin it).
std::string EncodeRedisEnvelope(const KombuMessage& m, std::string_view exchange, std::string_view routing_key,
                                std::string_view delivery_tag = {});

struct DecodedEnvelope {
  nlohmann::json headers;
  nlohmann::json properties;
  std::string body;  // base64-decoded when body_encoding says base64
};
// Parses a Redis envelope (as workers write pidbox replies). Errors name what is wrong.
Result<DecodedEnvelope> DecodeRedisEnvelope(std::string_view text);

// A random (version 4) UUID in canonical text form.
std::string NewUuid4();

// nlohmann's dump with invalid UTF-8 replaced rather than thrown on.
std::string DumpJson(const nlohmann::json& value);

}  // namespace stalk
