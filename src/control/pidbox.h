// Stalk — Celery monitoring server.
// Celery's remote-control ("pidbox") messages, transport-neutral (celery-protocol.md §3.2, §3.4):
// the request body {method, arguments, destination, pattern, matcher[, ticket, reply_to]} with headers
// {clock, expires}, and the reply body {"<nodename>": <handler result>} matched to its request by the
// `ticket` header. Which exchange/channel carries them is the transport's business.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/kombu_message.h"

namespace stalk {

// Names Celery's Mailbox uses (control_exchange "celery").
inline constexpr const char* kPidboxExchange = "celery.pidbox";
inline constexpr const char* kPidboxReplyExchange = "reply.celery.pidbox";

// One command to workers.
struct ControlRequest {
  std::string method;                                   // "ping", "pool_grow", ...
  nlohmann::json arguments = nlohmann::json::object();  // the handler's keyword arguments
  std::vector<std::string> destination;                 // node names; empty: every worker
  bool reply = false;                                   // ask workers to answer
  // Stop collecting after this many replies; 0: destination.size() when given, else no limit
  // (Celery's Mailbox._broadcast limit).
  int limit = 0;
};

// One worker's answer: {"hostname": body}.
struct ControlReply {
  std::string hostname;
  nlohmann::json body;  // e.g. {"ok": "pong"}, {"error": "..."}, or an inspect result
};

// The request message. `ticket`/`reply_routing_key` are used only when request.reply is set;
// `expires` is epoch seconds (workers ignore it, as Python clients send it).
KombuMessage EncodePidboxRequest(const ControlRequest& request, const std::string& ticket,
                                 const std::string& reply_routing_key, int64_t clock, double expires);

// A reply: its ticket header and the {node: result} pairs of its body.
struct PidboxReply {
  std::string ticket;
  std::vector<ControlReply> replies;
};
Result<PidboxReply> DecodePidboxReply(const DecodedEnvelope& envelope);

}  // namespace stalk
