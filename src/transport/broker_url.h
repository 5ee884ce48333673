// Stalk — Celery monitoring server.
// BrokerUrl: parses Celery/kombu broker URLs. Redis forms: redis://[[user]:password@]host[:port][/db],
// unix socket as redis+socket:///path?virtual_host=N (kombu) or unix:///path?db=N. The password is
// percent-decoded and never printed: Redacted() is what logs and errors show.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace stalk {

struct BrokerUrl {
  enum class Kind { kRedis, kAmqp };
  Kind kind = Kind::kRedis;
  bool tls = false;
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path;  // non-empty: connect over this unix socket
  std::string username;
  std::string password;
  int db = 0;
  std::string vhost = "/";  // AMQP

  // scheme://[user@]host:port/db with the password replaced by "***".
  std::string Redacted() const;
};

Result<BrokerUrl> ParseBrokerUrl(std::string_view url);

}  // namespace stalk
