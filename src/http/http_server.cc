// Stalk — Celery monitoring server.
#include "http/http_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cstdio>
#include <deque>
#include <optional>
#include <span>

#include "common/log.h"
#include "http/sse_hub.h"

namespace stalk {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;

struct HttpServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  unix_socket::acceptor unix_acceptor{ioc};
  std::optional<asio::ssl::context> tls;  // set with --certfile/--keyfile
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::unique_ptr<asio::steady_timer>> timers;
};

namespace {

using TcpStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using UnixStream = beast::basic_stream<unix_socket>;

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

std::string PeerAddress(const tcp::socket& socket) {
  beast::error_code ec;
  return socket.remote_endpoint(ec).address().to_string();
}
std::string PeerAddress(const unix_socket::socket& /*socket*/) { return "unix"; }

// One connection: request/response with keep-alive, or, after a handler returned an event stream,
// a chunked `text/event-stream` fed by an SseHub (Push) until the client leaves or falls behind.
// Stream is plain TCP, TLS over TCP (--certfile) or a Unix socket (--unix_socket).
template <class Stream>
class Session : public std::enable_shared_from_this<Session<Stream>>, public SseSink {
 public:
  template <class... StreamArgs>
  Session(const HttpServerOptions& options, const Router& router, std::atomic<uint64_t>& requests,
          StreamArgs&&... stream_args)
      : stream_(std::forward<StreamArgs>(stream_args)...), options_(options), router_(router), requests_(requests) {}

  void Run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kIsTls<Stream>) {
        // The handshake has the read deadline too: a client that connects and says nothing is dropped.
        beast::get_lowest_layer(self->stream_).expires_after(std::chrono::seconds(self->options_.read_timeout_seconds));
        self->stream_.async_handshake(asio::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) {
            self->CountTlsFailure(ec);
            self->Close();
            return;
          }
          self->Read();
        });
      } else {
        self->Read();
      }
    });
  }

  // SseSink: called from any thread (the hub's broadcaster); the queueing happens on our strand.
  void Push(std::shared_ptr<const std::string> framed) override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), framed = std::move(framed)]() mutable {
      self->Enqueue(std::move(framed), /*raw=*/false);
    });
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.max_body_bytes);
    parser_->header_limit(static_cast<uint32_t>(options_.max_header_bytes));
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::ssl::error::stream_truncated) {
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
    r.remote_addr = PeerAddress(beast::get_lowest_layer(stream_).socket());
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
    hub_->Attach(this->shared_from_this());
  }

  void WatchForClose() {
    stream_.async_read_some(asio::buffer(discard_), [self = this->shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        // The only deadline on a stream is the write's: a timeout here means a write stalled (the
        // stream's timer cancels this read first).
        if (ec == beast::error::timeout) {
          self->DropStalledStream();
        }
        self->Close();
      } else {
        self->WatchForClose();
      }
    });
  }

  // A write that stalled past stream_write_timeout_seconds: the client stopped reading. As slow as one
  // over the unsent bound, and counted the same way (once: the caller closes the stream next).
  void DropStalledStream() {
    if (closed_ || !hub_) {
      return;
    }
    static RateLimiter limiter;
    if (limiter.Allow()) {
      Logger("http")->warn("dropping an event-stream client whose write stalled for {} s",
                           options_.stream_write_timeout_seconds);
    }
    hub_->CountDroppedSlow();
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
    // A member, not a local: async_write keeps only the span, which must outlive the write (ASan
    // found the stack array read after WriteNext returned).
    auto& buffers = write_buffers_;
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
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_.stream_write_timeout_seconds));
    asio::async_write(stream_, std::span(buffers.data(), n),
                      [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(beast::error_code ec) {
    if (ec) {
      if (ec == beast::error::timeout) {
        DropStalledStream();
      }
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
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_.read_timeout_seconds));
    bhttp::async_write(stream_, *res, [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
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
    // TLS: no close_notify is sent (it would need one more round trip); HTTP framing already tells the
    // client where each response ends.
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(std::remove_reference_t<decltype(socket)>::shutdown_send, ec);
    socket.close(ec);
  }

  void CountTlsFailure(const beast::error_code& ec) {
    static RateLimiter limiter;
    if (limiter.Allow()) {
      Logger("http")->info("TLS handshake failed: {}", ec.message());
    }
  }

  Stream stream_;
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
  std::array<asio::const_buffer, 3> write_buffers_;  // the write in flight (one at a time)
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
  impl.acceptor.async_accept(
      asio::make_strand(impl.ioc), [&impl, &options, &router, &requests](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) {
          return;
        }
        if (!ec) {
          if (impl.tls) {
            std::make_shared<Session<TlsStream>>(options, router, requests, std::move(socket), *impl.tls)->Run();
          } else {
            std::make_shared<Session<TcpStream>>(options, router, requests, std::move(socket))->Run();
          }
        }
        Accept(impl, options, router, requests);
      });
}

void AcceptUnix(HttpServer::Impl& impl, const HttpServerOptions& options, const Router& router,
                std::atomic<uint64_t>& requests) {
  impl.unix_acceptor.async_accept(asio::make_strand(impl.ioc), [&impl, &options, &router, &requests](
                                                                   beast::error_code ec, unix_socket::socket socket) {
    if (ec == asio::error::operation_aborted) {
      return;
    }
    if (!ec) {
      std::make_shared<Session<UnixStream>>(options, router, requests, std::move(socket))->Run();
    }
    AcceptUnix(impl, options, router, requests);
  });
}

Result<bool> SetUpTls(asio::ssl::context& ctx, const HttpServerOptions& options) {
  beast::error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                      asio::ssl::context::single_dh_use,
                  ec);
  ctx.use_certificate_chain_file(options.certfile, ec);
  if (ec) {
    return Error{"--certfile " + options.certfile + ": " + ec.message()};
  }
  ctx.use_private_key_file(options.keyfile, asio::ssl::context::pem, ec);
  if (ec) {
    return Error{"--keyfile " + options.keyfile + ": " + ec.message()};
  }
  return true;
}

Result<bool> ListenUnix(HttpServer::Impl& impl, const std::string& path) {
  // A stale socket file from a previous run is replaced; any other kind of file is left alone.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{"--unix_socket " + path + " exists and is not a socket"};
    }
    ::unlink(path.c_str());
  }
  beast::error_code ec;
  const unix_socket::endpoint ep(path);
  impl.unix_acceptor.open(ep.protocol(), ec);
  if (!ec) {
    impl.unix_acceptor.bind(ep, ec);
  }
  if (!ec) {
    impl.unix_acceptor.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    return Error{"cannot listen on unix socket " + path + ": " + ec.message()};
  }
  return true;
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
  if (options_.certfile.empty() != options_.keyfile.empty()) {
    return Error{"--certfile and --keyfile go together"};
  }
  if (!options_.certfile.empty()) {
    impl_->tls.emplace(asio::ssl::context::tls_server);
    if (auto r = SetUpTls(*impl_->tls, options_); !r) {
      return Error{r.error()};
    }
  }
  if (!options_.unix_socket.empty()) {
    if (impl_->tls) {
      return Error{"--unix_socket serves plain HTTP; leave out --certfile/--keyfile"};
    }
    if (auto r = ListenUnix(*impl_, options_.unix_socket); !r) {
      return Error{r.error()};
    }
    StartThreads();
    AcceptUnix(*impl_, options_, router_, requests_);
    return 0;
  }
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
    return Error{"cannot listen on " + options_.address + ":" + std::to_string(options_.port) + ": " + ec.message()};
  }
  const int bound = impl_->acceptor.local_endpoint().port();
  Accept(*impl_, options_, router_, requests_);
  StartThreads();
  return bound;
}

void HttpServer::StartThreads() {
  impl_->work.emplace(impl_->ioc.get_executor());
  for (const Periodic& p : periodic_) {
    impl_->timers.push_back(std::make_unique<asio::steady_timer>(asio::make_strand(impl_->ioc)));
    Schedule(*impl_->timers.back(), p.period, p.fn);
  }
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    threads_.emplace_back([this] { impl_->ioc.run(); });
  }
}

void HttpServer::Stop() {
  if (threads_.empty()) {
    return;
  }
  asio::post(impl_->ioc, [this] {
    beast::error_code ec;
    impl_->acceptor.close(ec);
    impl_->unix_acceptor.close(ec);
  });
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : threads_) {
    t.join();
  }
  threads_.clear();
  if (!options_.unix_socket.empty()) {
    ::unlink(options_.unix_socket.c_str());
  }
}

}  // namespace stalk
