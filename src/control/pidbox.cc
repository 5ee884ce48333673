// Stalk — Celery monitoring server.
#include "control/pidbox.h"

namespace stalk {

KombuMessage EncodePidboxRequest(const ControlRequest& request, const std::string& ticket,
                                 const std::string& reply_routing_key, int64_t clock, double expires) {
  nlohmann::json body = {
      {"method", request.method},
      {"arguments", request.arguments.is_object() ? request.arguments : nlohmann::json::object()},
      {"destination", request.destination.empty() ? nlohmann::json(nullptr) : nlohmann::json(request.destination)},
      {"pattern", nullptr},
      {"matcher", nullptr},
  };
  if (request.reply) {
    body["ticket"] = ticket;
    body["reply_to"] = {{"exchange", kPidboxReplyExchange}, {"routing_key", reply_routing_key}};
  }
  KombuMessage m;
  m.body = DumpJson(body);
  m.headers = {{"clock", clock}, {"expires", expires}};
  m.properties = {{"delivery_mode", 2}, {"priority", 0}};
  return m;
}

Result<PidboxReply> DecodePidboxReply(const DecodedEnvelope& envelope) {
  PidboxReply out;
  if (auto t = envelope.headers.find("ticket"); t != envelope.headers.end() && t->is_string()) {
    out.ticket = t->get<std::string>();
  }
  nlohmann::json body = nlohmann::json::parse(envelope.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return Error{"pidbox reply body is not a JSON object"};
  }
  for (auto& [node, result] : body.items()) {
    if (node.empty()) {
      continue;  // answers no worker's name: nothing to show it under, and no worker to count it for
    }
    out.replies.push_back(ControlReply{node, std::move(result)});
  }
  return out;
}

}  // namespace stalk
