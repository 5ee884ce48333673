// Stalk — Celery monitoring server.
// fuzz_resp: the subscriber's RESP fast path (transport/resp_pmessage.h) against hiredis on the same
// bytes. Whatever ParsePMessage claims must be what hiredis parses: a complete pmessage is the same
// reply with the same pattern, channel and payload, from the same bytes; an incomplete one is a
// prefix hiredis also waits on. (kOther promises nothing: hiredis takes those bytes.)
#include <hiredis/hiredis.h>

#include <string>

#include "fuzz_support.h"
#include "fuzz_targets.h"
#include "transport/resp_pmessage.h"

namespace stalk::fuzz {
namespace {

std::string_view Str(const redisReply* r) { return std::string_view(r->str, r->len); }

}  // namespace

int FuzzResp(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  PMessageView m;
  const PMessageParse st = ParsePMessage(bytes, size, m);
  if (st == PMessageParse::kOther) {
    return 0;
  }
  redisReader* reader = redisReaderCreate();
  // A complete pmessage is fed exactly its own bytes: hiredis must return it, and nothing after it.
  const size_t fed = st == PMessageParse::kComplete ? m.size : size;
  FuzzCheck(st != PMessageParse::kComplete || m.size <= size, "a pmessage lies within the bytes");
  redisReaderFeed(reader, bytes, fed);
  void* reply = nullptr;
  const int rc = redisReaderGetReply(reader, &reply);
  FuzzCheck(rc == REDIS_OK, "hiredis accepts what ParsePMessage accepts");
  if (st == PMessageParse::kIncomplete) {
    FuzzCheck(reply == nullptr, "hiredis also waits for more bytes");
  } else {
    FuzzCheck(reply != nullptr, "hiredis finds the same complete reply");
    const auto* r = static_cast<const redisReply*>(reply);
    FuzzCheck(r->type == REDIS_REPLY_ARRAY && r->elements == 4, "a 4-element array");
    for (size_t i = 0; i < 4; ++i) {
      FuzzCheck(r->element[i]->type == REDIS_REPLY_STRING, "of bulk strings");
    }
    FuzzCheck(Str(r->element[0]) == "pmessage", "that is a pmessage");
    FuzzCheck(Str(r->element[1]) == m.pattern, "same pattern");
    FuzzCheck(Str(r->element[2]) == m.channel, "same channel");
    FuzzCheck(Str(r->element[3]) == m.payload, "same payload");
    FuzzCheck(reader->pos == reader->len && reader->ridx == -1, "hiredis consumed exactly those bytes");
  }
  if (reply) {
    freeReplyObject(reply);
  }
  redisReaderFree(reader);
  return 0;
}

}  // namespace stalk::fuzz
