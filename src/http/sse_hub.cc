// Stalk — Celery monitoring server.
#include "http/sse_hub.h"

namespace stalk {

std::string SseHub::Frame(std::string_view data, std::string_view event) {
  std::string out;
  out.reserve(data.size() + event.size() + 16);
  if (!event.empty()) {
    out.append("event: ").append(event).append("\n");
  }
  size_t start = 0;
  while (true) {
    const size_t nl = data.find('\n', start);
    out.append("data: ").append(data.substr(start, nl == std::string_view::npos ? nl : nl - start));
    out.push_back('\n');
    if (nl == std::string_view::npos) {
      break;
    }
    start = nl + 1;
  }
  out.push_back('\n');
  return out;
}

void SseHub::Broadcast(std::string_view data, std::string_view event) {
  auto framed = std::make_shared<const std::string>(Frame(data, event));
  std::vector<std::shared_ptr<SseSink>> live;
  {
    std::lock_guard lock(mu_);
    latest_ = framed;
    std::erase_if(sinks_, [&live](const std::weak_ptr<SseSink>& weak) {
      auto sink = weak.lock();
      if (!sink) {
        return true;
      }
      live.push_back(std::move(sink));
      return false;
    });
    open_.store(sinks_.size(), std::memory_order_relaxed);
  }
  broadcasts_.fetch_add(1, std::memory_order_relaxed);
  // Outside the lock: Push only posts to the connection's strand.
  for (auto& sink : live) {
    sink->Push(framed);
  }
}

void SseHub::Attach(const std::shared_ptr<SseSink>& sink) {
  std::shared_ptr<const std::string> latest;
  {
    std::lock_guard lock(mu_);
    sinks_.push_back(sink);
    open_.store(sinks_.size(), std::memory_order_relaxed);
    latest = latest_;
  }
  opened_.fetch_add(1, std::memory_order_relaxed);
  if (latest) {
    sink->Push(std::move(latest));
  }
}

}  // namespace stalk
