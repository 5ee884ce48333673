// Stalk — Celery monitoring server.
// RedisConnection: one Redis connection over our own socket, with hiredis used only as the RESP
// encoder/parser. Owning the socket lets the event reader poll with a deadline (to notice a frozen
// Redis and to stop promptly) and feed the parser in bounded chunks, which hiredis's blocking context
// API cannot do. Not thread-safe, except Interrupt(), which may be called from any thread.
#pragma once

#include <hiredis/hiredis.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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
  void Close();
  // Wakes a blocked ReadReply from another thread; the connection is closed afterwards.
  void Interrupt();

  Result<bool> Send(const std::vector<std::string_view>& args);
  // Next reply; nullptr with ok() on timeout; an error when the connection failed (then closed).
  Result<ReplyPtr> ReadReply(int timeout_ms);
  // Send + read one reply; a timeout is an error here.
  Result<ReplyPtr> Command(const std::vector<std::string_view>& args, int timeout_ms);

 private:
  Result<bool> WriteAll(const char* data, size_t len);
  std::atomic<int> fd_{-1};
  redisReader* reader_ = nullptr;
};

}  // namespace stalk
