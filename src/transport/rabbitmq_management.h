// Stalk — Celery monitoring server.
// RabbitManagementReader: queue lengths from the RabbitMQ management HTTP API, Flower's --broker_api
// (celery-protocol.md §4.2): GET <api>/queues/<vhost, %2F for "/">?columns=name,messages,consumers
// with libcurl, one request for all queues. `messages` there is ready + unacknowledged (what Flower
// shows), and it sees queues a passive declare cannot (exclusive ones). The API URL carries its
// credentials (http://user:password@host:15672/api/); Redacted() hides the password. Thread-safe:
// a mutex around one reused curl handle (keep-alive).
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "common/result.h"
#include "transport/queue_depth.h"

namespace stalk {

class RabbitManagementReader {
 public:
  RabbitManagementReader(std::string api_url, std::string vhost, int timeout_ms = 3000);
  ~RabbitManagementReader();
  RabbitManagementReader(const RabbitManagementReader&) = delete;
  RabbitManagementReader& operator=(const RabbitManagementReader&) = delete;

  // Lengths of `queues`, in that order; a queue the API does not list counts 0 messages, 0 consumers.
  Result<std::vector<QueueDepth>> Lengths(const std::vector<std::string>& queues);
  // The request URL with the password replaced by "***".
  std::string Redacted() const;
  // The URL requested for the queue list (tests).
  std::string QueuesUrl() const;

 private:
  std::string api_url_;
  std::string vhost_;
  int timeout_ms_;
  std::mutex mu_;
  void* curl_ = nullptr;  // CURL*
};

// Percent-encodes everything but RFC 3986 unreserved characters ("/" -> "%2F").
std::string PercentEncode(const std::string& s);

}  // namespace stalk
