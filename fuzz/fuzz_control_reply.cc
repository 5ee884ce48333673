// Stalk — Celery monitoring server.
// fuzz_control_reply: what workers and the result backend write back — a pidbox reply envelope as
// Stalk reads it from Redis (DecodeRedisEnvelope, then DecodePidboxReply), and a stored task result
// (ParseResultMeta, for /api/task/result).
#include <string_view>

#include "control/kombu_message.h"
#include "control/pidbox.h"
#include "control/redis_result_backend.h"
#include "fuzz_support.h"
#include "fuzz_targets.h"

namespace stalk::fuzz {

int FuzzControlReply(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto envelope = DecodeRedisEnvelope(text)) {
    auto reply = DecodePidboxReply(*envelope);
    if (reply) {
      for (const ControlReply& r : reply->replies) {
        FuzzCheck(!r.hostname.empty(), "every decoded reply names its worker");
      }
    } else {
      FuzzCheck(!reply.error().empty(), "a reply error says why");
    }
  } else {
    FuzzCheck(!envelope.error().empty(), "an envelope error says why");
  }
  auto meta = ParseResultMeta(text);
  if (meta) {
    FuzzCheck(!meta->state.empty(), "a parsed result has a state");
  } else {
    FuzzCheck(!meta.error().empty(), "a result error says why");
  }
  return 0;
}

}  // namespace stalk::fuzz
