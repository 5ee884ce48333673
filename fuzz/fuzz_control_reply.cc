// Stalk — Celery monitoring server.
// fuzz_control_reply: what workers and the result backend write back — a pidbox reply envelope as
// Stalk reads it from Redis (DecodeRedisEnvelope, then DecodePidboxReply), and a stored task result
// (ParseResultMeta, for /api/task/result). Over RabbitMQ a reply's headers arrive as an AMQP field
// table: the same bytes are also read as <2-byte length><table><body> and go through rabbitmq-c's
// amqp_decode_table, AmqpTableToJson and DecodePidboxReply as AmqpControlTransport does.
#include <amqp.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/amqp_message.h"
#include "control/kombu_message.h"
#include "control/pidbox.h"
#include "control/redis_result_backend.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {
namespace {

void CheckReply(const Result<PidboxReply>& reply) {
  if (reply) {
    for (const ControlReply& r : reply->replies) {
      FuzzCheck(!r.hostname.empty(), "every decoded reply names its worker");
    }
  } else {
    FuzzCheck(!reply.error().empty(), "a reply error says why");
  }
}

void FuzzAmqpReply(std::string_view bytes) {
  if (bytes.size() < 2) {
    return;
  }
  const size_t table_len = std::min<size_t>(
      bytes.size() - 2, static_cast<size_t>(static_cast<uint8_t>(bytes[0])) << 8 | static_cast<uint8_t>(bytes[1]));
  std::string table_bytes(bytes.substr(2, table_len));  // rabbitmq-c wants a mutable buffer
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_table_t table;
  size_t offset = 0;
  if (amqp_decode_table(amqp_bytes_t{table_bytes.size(), table_bytes.data()}, &pool, &table, &offset) ==
      AMQP_STATUS_OK) {
    DecodedEnvelope envelope;
    envelope.headers = AmqpTableToJson(table);
    FuzzCheck(envelope.headers.is_object(), "a table becomes a JSON object");
    DumpJson(envelope.headers);  // must not throw, whatever bytes the strings hold
    envelope.properties = nlohmann::json::object();
    envelope.body = std::string(bytes.substr(2 + table_len));
    CheckReply(DecodePidboxReply(envelope));
  }
  empty_amqp_pool(&pool);
}

}  // namespace

int FuzzControlReply(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto envelope = DecodeRedisEnvelope(text)) {
    CheckReply(DecodePidboxReply(*envelope));
  } else {
    FuzzCheck(!envelope.error().empty(), "an envelope error says why");
  }
  auto meta = ParseResultMeta(text);
  if (meta) {
    FuzzCheck(!meta->state.empty(), "a parsed result has a state");
  } else {
    FuzzCheck(!meta.error().empty(), "a result error says why");
  }
  FuzzAmqpReply(text);
  return 0;
}

}  // namespace stalk::fuzz
