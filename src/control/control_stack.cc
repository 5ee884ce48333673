// Stalk — Celery monitoring server.
#include "control/control_stack.h"

#include <algorithm>

#include "common/log.h"
#include "control/amqp_control_transport.h"
#include "control/redis_control_transport.h"

namespace stalk {

std::unique_ptr<ControlTransport> MakeControlTransport(const BrokerUrl& broker, const std::string& global_keyprefix,
                                                       const std::string& fanout_prefix) {
  if (broker.kind == BrokerUrl::Kind::kAmqp) {
    return std::make_unique<AmqpControlTransport>(broker, AmqpControlOptions{});
  }
  RedisControlOptions ro;
  ro.global_keyprefix = global_keyprefix;
  ro.fanout_prefix = fanout_prefix;
  return std::make_unique<RedisControlTransport>(broker, ro);
}

ControlStack::ControlStack(const BrokerUrl& broker, const std::string& broker_text, ControlSetup setup,
                           SharedState& state, std::function<double()> now) {
  transport_ = MakeControlTransport(broker, setup.global_keyprefix, setup.fanout_prefix);

  const std::string backend_text = setup.result_backend.empty() ? broker_text : setup.result_backend;
  auto backend_url = ParseBrokerUrl(backend_text);
  if (backend_url && backend_url->kind == BrokerUrl::Kind::kRedis && !backend_url->tls) {
    backend_ = std::make_unique<RedisResultBackend>(*backend_url, RedisResultBackendOptions{});
    backend_description_ = backend_url->Redacted();
    // 5 s: a stopped backend shows (and can alert) within seconds; one PING per 5 s costs nothing.
    probe_ = std::make_unique<ResultBackendProbe>(*backend_, 5.0);
  } else {
    // Never echo the URL itself: it may carry a password.
    const size_t scheme_end = backend_text.find("://");
    backend_description_ =
        "none (" +
        (scheme_end == std::string::npos ? std::string("unparsable URL")
                                         : backend_text.substr(0, scheme_end) + ":// is not supported") +
        ")";
  }

  Logger("control")->info("result backend for /api/task/result, apply, abort: {}", backend_description_);

  ControlServiceOptions so;
  so.inspect_timeout_ms = std::max(1, setup.inspect_timeout_ms);
  so.max_blocking_calls = std::max(1, setup.http_threads - 1);
  service_ = std::make_unique<ControlService>(*transport_, backend_.get(), cache_, state, so, std::move(now));
  refresher_ = std::make_unique<InspectRefresher>(
      [this](const std::string& host) { return service_->RefreshWorkers(host); }, InspectRefresherOptions{});
}

ControlStack::~ControlStack() { Stop(); }

void ControlStack::Start() {
  refresher_->Start();
  if (probe_)
    probe_->Start();
}

void ControlStack::Stop() {
  if (probe_)
    probe_->Stop();
  refresher_->Stop();
}

}  // namespace stalk
