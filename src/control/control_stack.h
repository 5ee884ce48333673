// Stalk — Celery monitoring server.
// ControlStack: everything `stalk serve` needs for remote control, built from settings in one place —
// the broker transport (Redis or RabbitMQ), the result backend (Redis, or none), the inspect cache, the
// ControlService and the background InspectRefresher — so cli/serve.cc only wires it to HTTP and the
// state. Owns them all; Stop() (also run by the destructor) joins the refresher thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"
#include "control/control_service.h"
#include "control/control_transport.h"
#include "control/inspect_cache.h"
#include "control/inspect_refresher.h"
#include "control/redis_result_backend.h"
#include "control/result_backend_probe.h"
#include "state/shared_state.h"
#include "transport/broker_url.h"

namespace stalk {

// The broker's control transport: AMQP (celery.pidbox exchange) or Redis (kombu's fanout channels,
// honouring global_keyprefix and fanout_prefix). Also used by `stalk doctor`.
std::unique_ptr<ControlTransport> MakeControlTransport(const BrokerUrl& broker, const std::string& global_keyprefix,
                                                       const std::string& fanout_prefix);

struct ControlSetup {
  std::string global_keyprefix;          // --global_keyprefix
  std::string fanout_prefix = "/{db}.";  // --fanout_prefix
  int inspect_timeout_ms = 1000;         // --inspect_timeout
  int http_threads = 2;                  // --http_threads: blocking calls get all but one
  std::string result_backend;            // --result_backend; empty: the broker URL
};

class ControlStack {
 public:
  ControlStack(const BrokerUrl& broker, const std::string& broker_text, ControlSetup setup, SharedState& state,
               std::function<double()> now);
  ~ControlStack();
  ControlStack(const ControlStack&) = delete;
  ControlStack& operator=(const ControlStack&) = delete;

  ControlService& service() { return *service_; }
  InspectCache& cache() { return cache_; }
  // Add to the state's listeners: schedules inspections of workers as they appear.
  StateListener* listener() { return refresher_.get(); }
  // Where results are read from, password hidden ("none (...)" when unsupported).
  const std::string& result_backend_description() const { return backend_description_; }
  // The Redis result backend, or null when there is none (health, metrics: redis_result_backend.h).
  const RedisResultBackend* result_backend() const { return backend_.get(); }

  void Start();
  void Stop();

 private:
  std::unique_ptr<ControlTransport> transport_;  // Redis or AMQP, by the broker URL
  std::unique_ptr<RedisResultBackend> backend_;
  std::unique_ptr<ResultBackendProbe> probe_;  // pings backend_ every 5 s
  std::string backend_description_;
  InspectCache cache_;
  std::unique_ptr<ControlService> service_;
  std::unique_ptr<InspectRefresher> refresher_;
};

}  // namespace stalk
