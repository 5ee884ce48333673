// Stalk — Celery monitoring server.
// StalkProbe (see stalk_probe.h): a blocking socket with poll() deadlines; no HTTP library needed for
// one GET whose answer is a short text.
#include "setup/stalk_probe.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <regex>

namespace stalk {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  return static_cast<int>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
}

// The raw response, or an error text in `error`.
bool HttpGet(const std::string& host, const std::string& port, const std::string& path, int timeout_ms,
             std::string& response, std::string& error) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
    return false;
  }
  int fd = -1;
  error = "cannot connect";
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
      continue;
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = std::string("cannot connect: ") + strerror(errno);
      ::close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (::poll(&p, 1, RemainingMs(deadline)) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 ||
        soerr != 0) {
      error = soerr ? std::string("cannot connect: ") + strerror(soerr) : "connect timed out";
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0)
    return false;
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host + ":" + port +
                              "\r\nUser-Agent: stalk-doctor\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, RemainingMs(deadline)) != 1)
      break;
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    sent += static_cast<size_t>(n);
  }
  char buf[4096];
  while (sent == request.size() && response.size() < (64 << 10)) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, RemainingMs(deadline)) != 1) {
      error = "no answer in time";
      break;
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (response.empty()) {
    if (sent != request.size())
      error = "cannot send the request";
    return false;
  }
  return true;
}

}  // namespace

Check CheckStalkServer(const std::string& url, int timeout_ms) {
  const std::string name = "stalk serve healthy";
  if (url.empty())
    return {name, CheckStatus::kSkip, "no --stalk-url given", "pass --stalk-url http://127.0.0.1:5555"};
  // No user:password@ part: a URL that could carry a credential is refused, and never echoed.
  static const std::regex kUrl(R"(^(https?)://(\[[^\]]+\]|[^/:@]+)(?::(\d+))?(/[^@]*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    return {name, CheckStatus::kFail,
            "--stalk-url is not http://host[:port][/prefix] (credentials in it are not accepted)",
            "give a URL like http://127.0.0.1:5555"};
  }
  if (m[1] == "https")
    return {name, CheckStatus::kSkip, "https:// is not checked by doctor", "curl -fsS " + url + "/healthcheck"};
  std::string host = m[2].str();
  if (host.size() > 2 && host.front() == '[')
    host = host.substr(1, host.size() - 2);
  const std::string port = m[3].matched ? m[3].str() : "80";
  std::string prefix = m[4].matched ? m[4].str() : "";
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  std::string response, error;
  if (!HttpGet(host, port, prefix + "/healthcheck", timeout_ms, response, error)) {
    return {name, CheckStatus::kFail, url + ": " + error,
            "start it (./start_stalk.sh, systemctl start stalk-<project>) or correct --stalk-url"};
  }
  static const std::regex kStatus(R"(^HTTP/1\.[01] (\d{3}))");
  const size_t body_at = response.find("\r\n\r\n");
  std::string body = body_at == std::string::npos ? "" : response.substr(body_at + 4, 200);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
    body.pop_back();
  if (!std::regex_search(response, m, kStatus)) {
    return {name, CheckStatus::kFail, url + ": not an HTTP answer", "is something else listening on that port?"};
  }
  const int status = std::stoi(m[1].str());
  if (status == 200 && body.rfind("OK", 0) == 0) {
    return {name, body == "OK" ? CheckStatus::kPass : CheckStatus::kWarn, url + "/healthcheck: " + body,
            "see stalk's log for the store problem"};
  }
  if (status == 401 || status == 403) {
    return {name, CheckStatus::kWarn, url + "/healthcheck answers " + std::to_string(status) + " (behind auth)",
            "check it with credentials: curl -u user " + url + "/healthcheck"};
  }
  return {name, CheckStatus::kFail, url + "/healthcheck answers " + std::to_string(status) + ": " + body,
          "stalk cannot reach the broker: compare its --broker with the workers' (see stalk's log)"};
}

}  // namespace stalk
