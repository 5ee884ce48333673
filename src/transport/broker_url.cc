// Stalk — Celery monitoring server.
#include "transport/broker_url.h"

#include <charconv>

namespace stalk {
namespace {

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (r.ec == std::errc() && r.ptr == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool ParseInt(std::string_view s, int& out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// Finds `key=value` in a query string.
std::string_view QueryParam(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    const size_t eq = kv.find('=');
    if (eq != std::string_view::npos && kv.substr(0, eq) == key) {
      return kv.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

std::string BrokerUrl::Redacted() const {
  std::string s = kind == Kind::kAmqp ? (tls ? "amqps://" : "amqp://") : (tls ? "rediss://" : "redis://");
  if (!unix_path.empty()) {
    s = "redis+socket://";
  }
  if (!username.empty() || !password.empty()) {
    s += username;
    if (!password.empty()) {
      s += ":***";
    }
    s += '@';
  }
  if (!unix_path.empty()) {
    return s + unix_path + "?virtual_host=" + std::to_string(db);
  }
  s += host + ":" + std::to_string(port);
  return kind == Kind::kAmqp ? s + "/" + vhost : s + "/" + std::to_string(db);
}

Result<BrokerUrl> ParseBrokerUrl(std::string_view url) {
  BrokerUrl u;
  const size_t colon = url.find("://");
  if (colon == std::string_view::npos) {
    return Error{"broker URL has no scheme (expected redis://, unix:// or amqp://)"};
  }
  const std::string_view scheme = url.substr(0, colon);
  std::string_view rest = url.substr(colon + 3);
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  bool unix_socket = false;
  if (scheme == "redis") {
  } else if (scheme == "rediss") {
    u.tls = true;
  } else if (scheme == "redis+socket" || scheme == "unix" || scheme == "socket") {
    unix_socket = true;
  } else if (scheme == "amqp" || scheme == "pyamqp" || scheme == "amqps") {
    u.kind = BrokerUrl::Kind::kAmqp;
    u.tls = scheme == "amqps";
    u.port = u.tls ? 5671 : 5672;
    u.username = "guest";
    u.password = "guest";
  } else {
    return Error{"unsupported broker scheme '" + std::string(scheme) + "' (Stalk reads redis:// and amqp://)"};
  }
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    if (const size_t c = userinfo.find(':'); c != std::string_view::npos) {
      u.username = PercentDecode(userinfo.substr(0, c));
      u.password = PercentDecode(userinfo.substr(c + 1));
    } else if (u.kind == BrokerUrl::Kind::kRedis) {
      u.password = PercentDecode(userinfo);  // redis://password@host, as redis-py accepts
    } else {
      u.username = PercentDecode(userinfo);
    }
  }
  if (unix_socket) {
    u.unix_path = std::string(rest);
    if (u.unix_path.empty()) {
      return Error{"unix socket broker URL has no path"};
    }
    std::string_view db = QueryParam(query, "virtual_host");
    if (db.empty()) {
      db = QueryParam(query, "db");
    }
    if (!db.empty() && (!ParseInt(db, u.db) || u.db < 0)) {
      return Error{"invalid Redis db number in broker URL"};
    }
    return u;
  }
  std::string_view hostport = rest;
  std::string_view path;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    path = rest.substr(slash + 1);
  }
  if (!hostport.empty() && hostport.front() == '[') {  // [::1]:6379
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return Error{"invalid IPv6 host in broker URL"};
    }
    u.host = std::string(hostport.substr(1, close - 1));
    hostport.remove_prefix(close + 1);
    if (!hostport.empty() &&
        (hostport.front() != ':' || !ParseInt(hostport.substr(1), u.port) || u.port <= 0 || u.port > 65535)) {
      return Error{"invalid port in broker URL"};
    }
  } else if (const size_t c = hostport.rfind(':'); c != std::string_view::npos) {
    if (!ParseInt(hostport.substr(c + 1), u.port) || u.port <= 0 || u.port > 65535) {
      return Error{"invalid port in broker URL"};
    }
    u.host = std::string(hostport.substr(0, c));
  } else if (!hostport.empty()) {
    u.host = std::string(hostport);
  }
  if (u.host.empty() || u.host == "localhost") {
    u.host = u.host.empty() ? "127.0.0.1" : u.host;
  }
  if (u.kind == BrokerUrl::Kind::kRedis) {
    if (!path.empty() && !ParseInt(path, u.db)) {
      return Error{"invalid Redis db number in broker URL"};
    }
    if (u.db < 0) {
      return Error{"invalid Redis db number in broker URL"};
    }
  } else {
    u.vhost = path.empty() ? "/" : PercentDecode(path);
  }
  return u;
}

}  // namespace stalk
