// Stalk — Celery monitoring server.
// SseHub: fan-out of server-sent events to every open `text/event-stream` response. A route handler
// returns HttpResponse::EventStream(hub); the server keeps that connection open and attaches it here
// as an SseSink. Broadcast() hands one shared payload to every sink; each sink queues it on its own
// connection and writes asynchronously, so an open stream costs a socket and its queued bytes, never
// a thread. A sink whose unsent bytes would pass its bound (HttpServerOptions::max_stream_unsent_bytes)
// is a slow client: it is closed and counted here (dropped_slow), never allowed to grow memory.
//
// What the hub does not do: build payloads (its owner does, e.g. web/live_feed.h, on a timer) or
// know the state. Thread-safe: Attach/Broadcast may run on any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace stalk {

// One open event stream, implemented by the HTTP server's connection.
class SseSink {
 public:
  virtual ~SseSink() = default;
  // Queues an already-framed event ("data: ...\n\n") for writing; never blocks. The sink may close
  // itself instead (slow client) and report it with SseHub::CountDroppedSlow.
  virtual void Push(std::shared_ptr<const std::string> framed) = 0;
};

class SseHub {
 public:
  SseHub() = default;
  SseHub(const SseHub&) = delete;
  SseHub& operator=(const SseHub&) = delete;

  // Frames `data` as one SSE message (`event:` line if `event` is not empty; each line of `data`
  // gets its own `data:` prefix), remembers it as the latest, and pushes it to every open sink.
  void Broadcast(std::string_view data, std::string_view event = {});
  // Registers an open stream; it first receives the latest broadcast, if any. Held weakly: a closed
  // connection simply disappears at the next broadcast.
  void Attach(const std::shared_ptr<SseSink>& sink);

  void CountDroppedSlow() { dropped_slow_.fetch_add(1, std::memory_order_relaxed); }
  // Streams alive at the last Broadcast or Attach.
  size_t open_streams() const { return open_.load(std::memory_order_relaxed); }
  uint64_t dropped_slow() const { return dropped_slow_.load(std::memory_order_relaxed); }
  uint64_t streams_opened() const { return opened_.load(std::memory_order_relaxed); }
  uint64_t messages_broadcast() const { return broadcasts_.load(std::memory_order_relaxed); }

  // "event: e\ndata: line1\ndata: line2\n\n"
  static std::string Frame(std::string_view data, std::string_view event = {});

 private:
  std::mutex mu_;
  std::vector<std::weak_ptr<SseSink>> sinks_;
  std::shared_ptr<const std::string> latest_;
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> dropped_slow_{0};
  std::atomic<uint64_t> opened_{0};
  std::atomic<uint64_t> broadcasts_{0};
};

}  // namespace stalk
