// Stalk — Celery monitoring server.
// IngestQueue: the bounded hand-off between a transport's reader thread and the ingest writer.
// Bounded by bytes, not count, since one message may be a 24-event list or a 5 MB payload. When full,
// Push drops and counts rather than blocking: a blocked reader would make Redis cut the subscriber and
// lose far more. Its fill sets IngestStats::shed, the stages of work shed before it is full
// (common/load_shed.h). The bound (default 256 MiB) is sized to absorb multi-second writer stalls at
// 200k events/s.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "common/ingest_stats.h"

namespace stalk {

struct RawMessage {
  std::string payload;
  double received_at = 0;
  // Empty for kombu envelopes (Redis); the AMQP content type for raw bodies.
  std::string content_type;
  bool raw_body = false;
};

class IngestQueue {
 public:
  IngestQueue(size_t max_bytes, IngestStats& stats) : max_bytes_(max_bytes), stats_(stats) {}

  // False when dropped because the queue is full or closed.
  bool Push(RawMessage&& m);
  // Moves up to `max` messages into `out` (cleared first), waiting up to `timeout_ms` for the first.
  // Returns false once closed and drained.
  bool PopBatch(std::vector<RawMessage>& out, size_t max, int timeout_ms);
  void Close();
  size_t max_bytes() const { return max_bytes_; }

 private:
  const size_t max_bytes_;
  IngestStats& stats_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RawMessage> q_;
  size_t bytes_ = 0;
  bool closed_ = false;
};

}  // namespace stalk
