// Stalk — Celery monitoring server.
// ParsePMessage: recognizes one complete Redis "pmessage" push in raw RESP bytes
//   *4\r\n $8\r\n pmessage\r\n $N\r\n <pattern>\r\n $N\r\n <channel>\r\n $N\r\n <payload>\r\n
// without allocating — the fast path of RedisConnection::ReadPubSub. Anything else (other replies,
// odd but legal encodings, garbage) is kOther and goes to hiredis, which stays the authority on RESP;
// fuzz/fuzz_resp.cc checks that every kComplete agrees with hiredis byte for byte.
#pragma once

#include <cstddef>
#include <string_view>

namespace stalk {

struct PMessageView {
  std::string_view pattern, channel, payload;  // views into the parsed bytes
  size_t size = 0;                             // bytes of the whole reply
};

enum class PMessageParse {
  kComplete,    // `out` describes the pmessage at the start of the bytes
  kIncomplete,  // the bytes are the beginning of a pmessage: read more
  kOther,       // not a (plainly encoded) pmessage: let hiredis parse it
};

PMessageParse ParsePMessage(const char* data, size_t size, PMessageView& out);

}  // namespace stalk
