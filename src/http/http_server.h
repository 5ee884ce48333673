// Stalk — Celery monitoring server.
// HttpServer: HTTP/1.1 on Boost.Beast/Asio, asynchronous, on a small thread pool: an idle or slow
// client costs a socket, not a thread. Bounded headers and bodies, a read deadline against slowloris,
// keep-alive. Handlers run on the pool threads and must be quick (reads under the state read lock).
#pragma once

#include <atomic>
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
  size_t max_body_bytes = 1u << 20;
  size_t max_header_bytes = 16u << 10;
  int read_timeout_seconds = 30;
};

class HttpServer {
 public:
  HttpServer(HttpServerOptions options, const Router& router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts serving; returns the bound port (useful with port 0).
  Result<int> Start();
  void Stop();
  uint64_t requests_served() const { return requests_.load(std::memory_order_relaxed); }

  struct Impl;

 private:
  HttpServerOptions options_;
  const Router& router_;
  std::unique_ptr<Impl> impl_;
  std::vector<std::thread> threads_;
  std::atomic<uint64_t> requests_{0};
};

}  // namespace stalk
