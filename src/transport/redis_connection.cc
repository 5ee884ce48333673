// Stalk — Celery monitoring server.
#include "transport/redis_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transport/resp_pmessage.h"

namespace stalk {
namespace {

// Bytes asked of one recv. Bounded so one huge burst cannot make the parser's buffer balloon
// between replies; large enough that a subscriber receiving 150 MB/s (200k events/s) makes ~1,000
// reads a second, not ~10,000 (syscalls cost several microseconds in a VM).
constexpr size_t kReadChunk = 128 * 1024;
// The receive buffer starts at this size; it grows only to hold one larger message and shrinks back
// once that message is consumed (Redis accepts bulk strings of up to 512 MB).
constexpr size_t kInitialBuffer = 2 * kReadChunk;
constexpr size_t kShrinkAbove = 8 << 20;

bool IsPMessage(const redisReply& r) {
  return r.type == REDIS_REPLY_ARRAY && r.elements == 4 && r.element[0]->type == REDIS_REPLY_STRING &&
         std::string_view(r.element[0]->str, r.element[0]->len) == "pmessage" &&
         r.element[2]->type == REDIS_REPLY_STRING && r.element[3]->type == REDIS_REPLY_STRING;
}

Result<int> ConnectSocket(const BrokerUrl& url, int timeout_ms) {
  int fd = -1;
  auto finish_connect = [&](const sockaddr* addr, socklen_t len) -> Result<bool> {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int rc = ::connect(fd, addr, len);
    if (rc != 0 && errno != EINPROGRESS) {
      return Error{std::strerror(errno)};
    }
    if (rc != 0) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, timeout_ms);
      if (rc <= 0) {
        return Error{rc == 0 ? "connect timed out" : std::strerror(errno)};
      }
      int err = 0;
      socklen_t elen = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
      if (err != 0) {
        return Error{std::strerror(err)};
      }
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return true;
  };
  if (!url.unix_path.empty()) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (url.unix_path.size() >= sizeof sa.sun_path) {
      return Error{"unix socket path too long"};
    }
    std::memcpy(sa.sun_path, url.unix_path.c_str(), url.unix_path.size() + 1);
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto r = finish_connect(reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (!r) {
      ::close(fd);
      return Error{r.error()};
    }
    return fd;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(url.port);
  if (int rc = getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Error{std::string("cannot resolve host: ") + gai_strerror(rc)};
  }
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      continue;
    }
    auto r = finish_connect(ai->ai_addr, ai->ai_addrlen);
    if (r) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      freeaddrinfo(res);
      return fd;
    }
    last_error = r.error();
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return Error{last_error};
}

}  // namespace

RedisConnection::RedisConnection() = default;
RedisConnection::~RedisConnection() { Close(); }

void RedisConnection::Close() {
  const int fd = fd_.exchange(-1);
  if (fd >= 0) {
    ::close(fd);
  }
  if (in_end_ > in_begin_ || (reader_ && !ParserIdle())) {
    discarded_partial_ = true;
  }
  if (reader_) {
    redisReaderFree(reader_);
    reader_ = nullptr;
  }
  in_begin_ = in_end_ = 0;
}

void RedisConnection::Interrupt() {
  const int fd = fd_.load();
  if (fd >= 0) {
    ::shutdown(fd, SHUT_RDWR);
  }
}

Result<bool> RedisConnection::Connect(const BrokerUrl& url, int timeout_ms, bool select_db) {
  Close();
  if (url.tls) {
    return Error{"rediss:// (TLS) is not supported by this build (Debian's hiredis 0.14 has no TLS)"};
  }
  auto fd = ConnectSocket(url, timeout_ms);
  if (!fd) {
    return Error{"cannot connect to " + url.Redacted() + ": " + fd.error()};
  }
  fd_ = *fd;
  reader_ = redisReaderCreate();
  reader_->maxbuf = 0;  // keep hiredis from shrinking/regrowing the buffer on every feed
  if (!url.password.empty()) {
    std::vector<std::string_view> args{"AUTH"};
    if (!url.username.empty()) {
      args.emplace_back(url.username);
    }
    args.emplace_back(url.password);
    auto r = Command(args, timeout_ms);
    if (!r) {
      return Error{"AUTH failed: " + r.error()};
    }
    if ((*r)->type == REDIS_REPLY_ERROR) {
      std::string msg((*r)->str, (*r)->len);
      Close();
      return Error{"AUTH refused by Redis: " + msg};
    }
  }
  if (select_db && url.db != 0) {
    const std::string db = std::to_string(url.db);
    auto r = Command({"SELECT", db}, timeout_ms);
    if (!r || (*r)->type == REDIS_REPLY_ERROR) {
      Close();
      return Error{"SELECT " + db + " failed"};
    }
  }
  return true;
}

Result<bool> RedisConnection::WriteAll(const char* data, size_t len) {
  while (len > 0) {
    const int fd = fd_.load();
    if (fd < 0) {
      return Error{"not connected"};
    }
    const ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::string e = std::strerror(errno);
      Close();
      return Error{"write failed: " + e};
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

Result<bool> RedisConnection::Send(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* cmd = nullptr;
  const int len = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv.data(), lens.data());
  if (len < 0) {
    return Error{"cannot format command"};
  }
  auto r = WriteAll(cmd, static_cast<size_t>(len));
  redisFreeCommand(cmd);
  return r;
}

Result<size_t> RedisConnection::Fill(int timeout_ms) {
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
  }
  if (in_capacity_ - in_end_ < kReadChunk) {
    // Make room: move the unparsed bytes to the front, growing (or shrinking back) the buffer.
    const size_t pending = in_end_ - in_begin_;
    size_t capacity = in_capacity_;
    if (pending + kReadChunk > capacity) {
      capacity = std::max(2 * capacity, std::max(kInitialBuffer, pending + kReadChunk));
    } else if (capacity > kShrinkAbove && pending + kReadChunk <= kInitialBuffer) {
      capacity = kInitialBuffer;
    }
    if (capacity != in_capacity_) {
      auto bigger = std::make_unique<char[]>(capacity);
      if (pending > 0) {
        std::memcpy(bigger.get(), in_.get() + in_begin_, pending);
      }
      in_ = std::move(bigger);
      in_capacity_ = capacity;
    } else if (pending > 0) {
      std::memmove(in_.get(), in_.get() + in_begin_, pending);
    }
    in_begin_ = 0;
    in_end_ = pending;
  }
  bool waited = false;
  for (;;) {
    const int fd = fd_.load();
    if (fd < 0) {
      return Error{"not connected"};
    }
    // Without waiting first: a busy socket always has bytes, and then poll is a wasted syscall.
    const ssize_t n = ::recv(fd, in_.get() + in_end_, in_capacity_ - in_end_, waited ? 0 : MSG_DONTWAIT);
    if (n > 0) {
      in_end_ += static_cast<size_t>(n);
      return static_cast<size_t>(n);
    }
    if (n == 0) {
      Close();
      return Error{"connection closed by Redis"};
    }
    if (errno == EINTR) {
      continue;
    }
    if (waited || (errno != EAGAIN && errno != EWOULDBLOCK)) {
      std::string e = std::strerror(errno);
      Close();
      return Error{e};
    }
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc == 0) {
      return size_t{0};
    }
    if (rc < 0) {
      if (errno == EINTR) {
        continue;
      }
      std::string e = std::strerror(errno);
      Close();
      return Error{"poll failed: " + e};
    }
    waited = true;  // readable: the next recv blocks no longer than it takes to copy
  }
}

void RedisConnection::FeedBufferedToParser() {
  if (in_end_ > in_begin_) {
    redisReaderFeed(reader_, in_.get() + in_begin_, in_end_ - in_begin_);
  }
  in_begin_ = in_end_ = 0;
}

bool RedisConnection::ParserIdle() const { return reader_->ridx == -1 && reader_->pos >= reader_->len; }

Result<ReplyPtr> RedisConnection::ReadReply(int timeout_ms) {
  if (fd_.load() < 0 || !reader_) {
    return Error{"not connected"};
  }
  FeedBufferedToParser();
  for (;;) {
    void* reply = nullptr;
    if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
      std::string e = reader_->errstr;
      Close();
      return Error{"protocol error from Redis: " + e};
    }
    if (reply) {
      return ReplyPtr(static_cast<redisReply*>(reply));
    }
    auto n = Fill(timeout_ms);
    if (!n) {
      return Error{n.error()};
    }
    if (*n == 0) {
      return ReplyPtr();
    }
    FeedBufferedToParser();
  }
}

Result<RedisConnection::PubSubBatch> RedisConnection::ReadPubSub(int timeout_ms, const PMessageSink& on_pmessage) {
  if (fd_.load() < 0 || !reader_) {
    return Error{"not connected"};
  }
  PubSubBatch out;
  for (;;) {
    if (!ParserIdle()) {
      // hiredis holds bytes (after a reply that was not a pmessage): it parses until it holds none.
      void* reply = nullptr;
      if (redisReaderGetReply(reader_, &reply) != REDIS_OK) {
        std::string e = reader_->errstr;
        Close();
        return Error{"protocol error from Redis: " + e};
      }
      if (reply) {
        ReplyPtr r(static_cast<redisReply*>(reply));
        if (IsPMessage(*r)) {
          on_pmessage(std::string_view(r->element[2]->str, r->element[2]->len),
                      std::string_view(r->element[3]->str, r->element[3]->len));
          ++out.messages;
          continue;
        }
        out.reply = std::move(r);
        return out;
      }
      if (out.messages > 0) {
        return out;
      }
      auto n = Fill(timeout_ms);
      if (!n) {
        return Error{n.error()};
      }
      if (*n == 0) {
        return out;
      }
      FeedBufferedToParser();
      continue;
    }
    bool other = false;
    while (in_end_ > in_begin_) {
      PMessageView m;
      const PMessageParse st = ParsePMessage(in_.get() + in_begin_, in_end_ - in_begin_, m);
      if (st != PMessageParse::kComplete) {
        other = st == PMessageParse::kOther;
        break;
      }
      on_pmessage(m.channel, m.payload);
      in_begin_ += m.size;
      ++out.messages;
    }
    if (other) {
      FeedBufferedToParser();
      continue;
    }
    if (out.messages > 0) {
      return out;
    }
    auto n = Fill(timeout_ms);
    if (!n) {
      return Error{n.error()};
    }
    if (*n == 0) {
      return out;
    }
  }
}

Result<ReplyPtr> RedisConnection::Command(const std::vector<std::string_view>& args, int timeout_ms) {
  if (auto s = Send(args); !s) {
    return Error{s.error()};
  }
  auto r = ReadReply(timeout_ms);
  if (r && !*r) {
    Close();
    return Error{"Redis did not answer within " + std::to_string(timeout_ms) + " ms"};
  }
  return r;
}

}  // namespace stalk
