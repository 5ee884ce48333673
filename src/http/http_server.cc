// Stalk — Celery monitoring server.
#include "http/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "common/log.h"

namespace stalk {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct HttpServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const HttpServerOptions& options, const Router& router,
          std::atomic<uint64_t>& requests)
      : stream_(std::move(socket)), options_(options), router_(router), requests_(requests) {}

  void Run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->Read(); });
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
    Send(std::move(resp), req.keep_alive(), req.version(), r.method == "HEAD");
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
    res->content_length(len);
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
};

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
