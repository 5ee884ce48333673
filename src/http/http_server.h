// Stalk — Celery monitoring server.
// HttpServer: HTTP/1.1 on Boost.Beast/Asio (plain, TLS with --certfile, or a Unix socket),
// asynchronous, on a small thread pool: an idle or slow
// client costs a socket, not a thread. Bounded headers and bodies, a read deadline against slowloris,
// keep-alive. Handlers run on the pool threads and must be quick (reads under the state read lock).
// Streaming: a handler that returns HttpResponse::EventStream(hub) gets an open, chunked
// `text/event-stream` connection attached to that SseHub (http/sse_hub.h); unsent bytes per stream
// are bounded and a client that falls behind is dropped. Every() runs periodic work (e.g. building
// the live feed) on the same threads, so no extra thread is needed for it.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "http/router.h"

namespace stalk {

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  int port = 5555;
  int threads = 2;
  std::string url_prefix;  // Flower's --url_prefix: "flower" serves /flower/api/...
  std::string certfile;    // --certfile/--keyfile: HTTPS (TLS 1.2+) instead of HTTP
  std::string keyfile;
  std::string unix_socket;  // --unix_socket: listen on this path instead of address:port
  size_t max_body_bytes = 1u << 20;
  size_t max_header_bytes = 16u << 10;
  int read_timeout_seconds = 30;
  // Per event stream: most bytes queued but not yet written. A live page receives ~1 KB a second,
  // so 1 MiB is minutes of backlog; past it the client is too slow (or gone) and is dropped.
  size_t max_stream_unsent_bytes = 1u << 20;
  // A single write on an event stream that takes longer than this drops the client.
  int stream_write_timeout_seconds = 30;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const Router& router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving; returns the bound port (useful with port 0; 0 on a Unix socket).
  Result<int> Start();
  void Stop();
  // Runs `fn` every `period` on a server thread between Start() and Stop(); call before Start().
  // `fn` must be quick (it delays requests queued behind it on that thread).
  void Every(std::chrono::milliseconds period, std::function<void()> fn);
  uint64_t requests_served() const { return requests_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  void StartThreads();
  HttpServerOptions options_;
  const Router& router_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
  struct Periodic {
    std::chrono::milliseconds period;
    std::function<void()> fn;
  };
  std::vector<Periodic> periodic_;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace stalk
