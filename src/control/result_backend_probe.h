// Stalk — Celery monitoring server.
// ResultBackendProbe: PINGs the result backend every `interval` seconds on its own thread, so a
// backend that went away shows in /metrics (stalk_result_backend_up), /healthcheck and the
// result_backend_errors alert rule even when nobody asks for a result — Stalk itself only reads the
// backend on API calls. The ping uses the backend's connection and timeout (3 s), never the ingest path.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace stalk {

class RedisResultBackend;

class ResultBackendProbe {
 public:
  ResultBackendProbe(RedisResultBackend& backend, double interval_seconds);
  ~ResultBackendProbe();
  ResultBackendProbe(const ResultBackendProbe&) = delete;
  ResultBackendProbe& operator=(const ResultBackendProbe&) = delete;

  void Start();
  void Stop();  // wakes the thread; returns once a ping in flight ends (bounded by its timeout)

 private:
  RedisResultBackend& backend_;
  double interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace stalk
