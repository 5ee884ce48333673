// Stalk — Celery monitoring server.
#include "http/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <cstdio>
#include <deque>
#include <span>
#include <optional>

#include "common/log.h"
#include "http/sse_hub.h"

namespace stalk {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
};

namespace {

// One connection: request/response with keep-alive, or, after a handler returned an event stream,
// a chunked `text/event-stream` fed by an SseHub (Push) until the client leaves or falls behind.
class Session : public std::enable_shared_from_this<Session>, public SseSink {
 public:
  Session(tcp::socket socket, const HttpServerOptions& options, const Router& router,
          std::atomic<uint64_t>& requests)
      : stream_(std::move(socket)), options_(options), router_(router), requests_(requests) {}

  void Run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
  }

  // SseSink: called from any thread (the hub's broadcaster); the queueing happens on our strand.
  void Push(std::shared_ptr<const std::string> framed) override {
    asio::post(stream_.get_executor(),
               [self = shared_from_this(), framed = std::move(framed)]() mutable {
                 self->Enqueue(std::move(framed), /*raw=*/false);
               });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    stream_.expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      Close();
      return;
    }
    if (ec) {
      // Malformed request, oversized header or body: answer once, then close.
      const int status = ec == bhttp::error::body_limit ? 413 : (ec == bhttp::error::header_limit ? 431 : 400);
      Send(HttpResponse::Error(status, ec == bhttp::error::body_limit     ? "request body too large"
                                       : ec == bhttp::error::header_limit ? "request headers too large"
                                                                          : "malformed request"),
           /*keep_alive=*/false, 11, false);
      return;
    }
    auto& req = parser_->get();
    requests_.fetch_add(1, std::memory_order_relaxed);
    HttpRequest r;
    r.method = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    const size_t q = target.find('?');
    r.path = UrlDecode(target.substr(0, q), false);
    if (q != std::string_view::npos) {
      r.query = ParseQuery(target.substr(q + 1));
    }
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (char& c : name) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
      r.headers.emplace(std::move(name), std::string(f.value()));
    }
    r.body = std::move(req.body());
    beast::error_code peer_ec;
    r.remote_addr = stream_.socket().remote_endpoint(peer_ec).address().to_string();
    HttpResponse resp;
    if (!options_.url_prefix.empty()) {
      const std::string prefix = "/" + options_.url_prefix;
      if (r.path == prefix || r.path.starts_with(prefix + "/")) {
        r.path = r.path.substr(prefix.size());
        if (r.path.empty()) {
          r.path = "/";
        }
      } else {
        resp = HttpResponse::Error(404, "not found");
        Send(std::move(resp), req.keep_alive(), req.version(), r.method == "HEAD");
        return;
      }
    }
    try {
      resp = router_.Dispatch(r);
    } catch (const std::exception& e) {
      Logger("http")->error("handler for {} failed: {}", r.path, e.what());
      resp = HttpResponse::Error(500, "internal error");
    }
    if (resp.event_stream && resp.status == 200 && r.method == "GET") {
      StartStream(resp, req.version());
      return;
    }
    Send(std::move(resp), req.keep_alive(), req.version(), r.method == "HEAD");
  }

  // ---- event streams -------------------------------------------------------------------------

  void StartStream(const HttpResponse& resp, unsigned version) {
    hub_ = resp.event_stream;
    chunked_ = version >= 11;  // HTTP/1.0: the body ends when the connection closes
    std::string head = version >= 11 ? "HTTP/1.1 200 OK\r\n" : "HTTP/1.0 200 OK\r\n";
    head += "Server: stalk\r\nContent-Type: " + resp.content_type +
            "\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "X-Accel-Buffering: no\r\n";  // nginx: pass events through, do not buffer them
    for (const auto& [k, v] : resp.headers) {
      head += k + ": " + v + "\r\n";
    }
    head += chunked_ ? "Transfer-Encoding: chunked\r\n\r\n" : "Connection: close\r\n\r\n";
    Enqueue(std::make_shared<const std::string>(std::move(head)), /*raw=*/true);
    // Nothing more is expected from the client; a read that ends means it has gone away.
    WatchForClose();
    hub_->Attach(shared_from_this());
  }

  void WatchForClose() {
    stream_.socket().async_read_some(asio::buffer(discard_),
                                     [self = shared_from_this()](beast::error_code ec, size_t) {
                                       if (ec) {
                                         self->Close();
                                       } else {
                                         self->WatchForClose();
                                       }
                                     });
  }

  void Enqueue(std::shared_ptr<const std::string> data, bool raw) {
    if (closed_) {
      return;
    }
    if (unsent_bytes_ + data->size() > options_.max_stream_unsent_bytes) {
      static RateLimiter limiter;
      if (limiter.Allow()) {
        Logger("http")->warn("dropping a slow event-stream client ({} bytes unsent)", unsent_bytes_);
      }
      hub_->CountDroppedSlow();
      Close();
      return;
    }
    unsent_bytes_ += data->size();
    outbox_.push_back(Outgoing{std::move(data), raw});
    if (!writing_) {
      WriteNext();
    }
  }

  void WriteNext() {
    writing_ = true;
    const Outgoing& next = outbox_.front();
    std::array<asio::const_buffer, 3> buffers;
    size_t n = 0;
    if (chunked_ && !next.raw) {
      char size_line[24];
      const int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", next.data->size());
      chunk_head_.assign(size_line, static_cast<size_t>(len));
      buffers[n++] = asio::buffer(chunk_head_);
      buffers[n++] = asio::buffer(*next.data);
      buffers[n++] = asio::buffer("\r\n", 2);
    } else {
      buffers[n++] = asio::buffer(*next.data);
    }
    stream_.expires_after(std::chrono::seconds(options_.stream_write_timeout_seconds));
    asio::async_write(stream_, std::span(buffers.data(), n),
                      [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(beast::error_code ec) {
    if (ec) {
      Close();
      return;
    }
    unsent_bytes_ -= outbox_.front().data->size();
    outbox_.pop_front();
    if (outbox_.empty() || closed_) {
      writing_ = false;
      return;
    }
    WriteNext();
  }

  void Send(HttpResponse resp, bool keep_alive, unsigned version, bool head) {
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->version(version);
    res->result(static_cast<bhttp::status>(resp.status));
    res->set(bhttp::field::server, "stalk");
    res->set(bhttp::field::content_type, resp.content_type);
    res->set("X-Content-Type-Options", "nosniff");
    res->set("Cache-Control", "no-store");
    for (const auto& [k, v] : resp.headers) {
      res->set(k, v);
    }
    res->keep_alive(keep_alive);
    const size_t len = resp.body.size();
    if (!head) {
      res->body() = std::move(resp.body);
    }
    if (resp.status != 304 && resp.status != 204) {  // those never carry a body nor its length
      res->content_length(len);
    }
    stream_.expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    bhttp::async_write(stream_, *res,
                       [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                         if (ec || !keep_alive) {
                           self->Close();
                         } else {
                           self->Read();
                         }
                       });
  }

  void Close() {
    if (closed_) {
      return;
    }
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  const HttpServerOptions& options_;
  const Router& router_;
  std::atomic<uint64_t>& requests_;
  // Event-stream state; touched only on this connection's strand.
  struct Outgoing {
    std::shared_ptr<const std::string> data;
    bool raw;  // the response head: written as is, not as a chunk
  };
  SseHub* hub_ = nullptr;
  bool chunked_ = true;
  bool writing_ = false;
  bool closed_ = false;
  size_t unsent_bytes_ = 0;
  std::deque<Outgoing> outbox_;
  std::string chunk_head_;
  std::array<char, 256> discard_{};
};

void Schedule(asio::steady_timer& timer, std::chrono::milliseconds period, const std::function<void()>& fn) {
  timer.expires_after(period);
  timer.async_wait([&timer, period, &fn](beast::error_code ec) {
    if (ec) {
      return;
    }
    try {
      fn();
    } catch (const std::exception& e) {
      Logger("http")->error("periodic task failed: {}", e.what());
    }
    Schedule(timer, period, fn);
  });
}

void Accept(HttpServer::Impl& impl, const HttpServerOptions& options, const Router& router,
            std::atomic<uint64_t>& requests) {
  impl.acceptor.async_accept(asio::make_strand(impl.ioc), [&impl, &options, &router, &requests](
                                                              beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec) {
      std::make_shared<Session>(std::move(socket), options, router, requests)->Run();
    }
    Accept(impl, options, router, requests);
  });
}

}  // namespace

HttpServer::HttpServer(HttpServerOptions options, const Router& router)
    : options_(std::move(options)), router_(router), impl_(std::make_unique<Impl>()) {
  while (!options_.url_prefix.empty() && options_.url_prefix.front() == '/') {
    options_.url_prefix.erase(0, 1);
  }
  while (!options_.url_prefix.empty() && options_.url_prefix.back() == '/') {
    options_.url_prefix.pop_back();
  }
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Every(std::chrono::milliseconds period, std::function<void()> fn) {
  periodic_.push_back(Periodic{period, std::move(fn)});
}

Result<int> HttpServer::Start() {
  beast::error_code ec;
  const auto addr = asio::ip::make_address(options_.address, ec);
  if (ec) {
    return Error{"invalid --address '" + options_.address + "': " + ec.message()};
  }
  const tcp::endpoint ep(addr, static_cast<uint16_t>(options_.port));
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) {
    impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    impl_->acceptor.bind(ep, ec);
  }
  if (!ec) {
    impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return Error{"cannot listen on " + options_.address + ":" + std::to_string(options_.port) + ": " +
                 ec.message()};
  }
  const int bound = impl_->acceptor.local_endpoint().port();
  impl_->work.emplace(impl_->ioc.get_executor());
  Accept(*impl_, options_, router_, requests_);
  for (const Periodic& p : periodic_) {
    impl_->timers.push_back(std::make_unique<asio::steady_timer>(asio::make_strand(impl_->ioc)));
    Schedule(*impl_->timers.back(), p.period, p.fn);
  }
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { impl_->ioc.run(); });
  }
  return bound;
}

void HttpServer::Stop() {
  if (threads_.empty()) {
    return;
  }
  asio::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
  });
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : threads_) {
    t.join();
  }
  threads_.clear();
}

}  // namespace stalk
