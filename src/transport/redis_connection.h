// Stalk — Celery monitoring server.
// RedisConnection: one Redis connection over our own socket, with hiredis used only as the RESP
// encoder/parser. Owning the socket lets the event reader poll with a deadline (to notice a frozen
// Redis and to stop promptly) and feed the parser in bounded chunks, which hiredis's blocking context
// API cannot do. Not thread-safe, except Interrupt(), which may be called from any thread.
//
// Reads go through one receive buffer: recv without waiting first, and poll (with the caller's
// deadline) only when the socket is drained, so a busy subscriber makes one syscall per chunk, not
// two. ReadPubSub is the event reader's fast path: "pmessage" replies are parsed in place from that
// buffer (no hiredis reply objects: ~9 allocations and 2 copies less per message); any other reply
// goes through hiredis as usual.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/function_ref.h"
#include "common/result.h"
#include "transport/broker_url.h"

namespace stalk {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisConnection {
 public:
  RedisConnection();
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects and authenticates (AUTH, then SELECT db when select_db). Error text never has the password.
  Result<bool> Connect(const BrokerUrl& url, int timeout_ms, bool select_db);
  bool connected() const { return fd_ >= 0; }
  // Closes the socket. Bytes received but not yet parsed into a whole reply (a message cut off by
  // the connection's end) are discarded; TakeDiscardedPartial() tells whether that happened.
  void Close();
  // True once per close that discarded part of a reply (then resets).
  bool TakeDiscardedPartial() { return std::exchange(discarded_partial_, false); }
  // Wakes a blocked ReadReply from another thread; the connection is closed afterwards.
  void Interrupt();

  Result<bool> Send(const std::vector<std::string_view>& args);
  // Writes bytes that are already RESP-encoded commands (a pipeline of them): one write for many
  // commands. The caller reads one reply per command with ReadReply.
  Result<bool> SendRaw(std::string_view resp) { return WriteAll(resp.data(), resp.size()); }
  // Next reply; nullptr with ok() on timeout; an error when the connection failed (then closed).
  Result<ReplyPtr> ReadReply(int timeout_ms);
  // Send + read one reply; a timeout is an error here.
  Result<ReplyPtr> Command(const std::vector<std::string_view>& args, int timeout_ms);

  // ---- subscribed connections ----
  struct PubSubBatch {
    ReplyPtr reply;       // a reply that is not a pmessage (subscribe confirmation, pong, error)
    size_t messages = 0;  // pmessages handed to the sink by this call
  };
  // (channel, payload): views into the receive buffer, valid during the call only.
  using PMessageSink = FunctionRef<void(std::string_view channel, std::string_view payload)>;
  // Like ReadReply, for a connection in subscribed mode: every "pmessage" is handed to `on_pmessage`
  // instead of being returned. Returns once it delivered at least one message and has no other
  // complete one buffered, or with the first other reply, or after `timeout_ms` with neither (reply
  // null, messages 0). Errors as ReadReply (the connection is then closed).
  Result<PubSubBatch> ReadPubSub(int timeout_ms, const PMessageSink& on_pmessage);

 private:
  Result<bool> WriteAll(const char* data, size_t len);
  // Receives more bytes into the buffer: what is pending without waiting, else waits up to
  // `timeout_ms` for some. Returns the count, 0 on timeout; an error closes the connection.
  Result<size_t> Fill(int timeout_ms);
  // Hands the buffered bytes to hiredis (its own buffer then holds them).
  void FeedBufferedToParser();
  // hiredis holds no bytes and no partly parsed reply.
  bool ParserIdle() const;

  std::atomic<int> fd_{-1};
  redisReader* reader_ = nullptr;
  std::unique_ptr<char[]> in_;  // receive buffer: bytes [in_begin_, in_end_) not parsed yet
  size_t in_capacity_ = 0;
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  bool discarded_partial_ = false;
};

}  // namespace stalk
