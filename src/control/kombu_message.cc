// Stalk — Celery monitoring server.
#include "control/kombu_message.h"

#include <random>

#include "common/base64.h"
#include "common/task_id.h"

namespace stalk {

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string NewUuid4() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  Uuid u;
  const uint64_t hi = rng(), lo = rng();
  for (size_t i = 0; i < 8; ++i) {
    u[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    u[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  u[6] = static_cast<uint8_t>((u[6] & 0x0F) | 0x40);  // version 4
  u[8] = static_cast<uint8_t>((u[8] & 0x3F) | 0x80);  // RFC 4122 variant
  return FormatUuid(u);
}

std::string EncodeRedisEnvelope(const KombuMessage& m, std::string_view exchange, std::string_view routing_key,
                                std::string_view delivery_tag) {
  nlohmann::json props = m.properties.is_object() ? m.properties : nlohmann::json::object();
  props["delivery_info"] = {{"exchange", exchange}, {"routing_key", routing_key}};
  if (!props.contains("priority")) {
    props["priority"] = 0;
  }
  props["body_encoding"] = "base64";
  props["delivery_tag"] = delivery_tag.empty() ? NewUuid4() : std::string(delivery_tag);
  nlohmann::json env = {
      {"body", Base64Encode(m.body)},   {"content-encoding", m.content_encoding},
      {"content-type", m.content_type}, {"headers", m.headers.is_object() ? m.headers : nlohmann::json::object()},
      {"properties", std::move(props)},
  };
  return DumpJson(env);
}

Result<DecodedEnvelope> DecodeRedisEnvelope(std::string_view text) {
  nlohmann::json env = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (env.is_discarded() || !env.is_object()) {
    return Error{"envelope is not a JSON object"};
  }
  auto body = env.find("body");
  if (body == env.end() || !body->is_string()) {
    return Error{"envelope has no string body"};
  }
  DecodedEnvelope out;
  out.headers = env.value("headers", nlohmann::json::object());
  out.properties = env.value("properties", nlohmann::json::object());
  if (!out.headers.is_object())
    out.headers = nlohmann::json::object();
  if (!out.properties.is_object())
    out.properties = nlohmann::json::object();
  const auto& raw = body->get_ref<const std::string&>();
  const auto enc = out.properties.find("body_encoding");
  if (enc != out.properties.end() && enc->is_string() && enc->get<std::string>() == "base64") {
    if (!Base64Decode(raw, out.body)) {
      return Error{"envelope body is not valid base64"};
    }
  } else {
    out.body = raw;
  }
  return out;
}

}  // namespace stalk
