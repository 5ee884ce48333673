// Stalk — Celery monitoring server.
// The table of fuzz targets (fuzz_targets.h).
#include "fuzz_targets.h"

namespace stalk::fuzz {

std::span<const FuzzTarget> AllTargets() {
  static constexpr FuzzTarget kTargets[] = {
      {"fuzz_envelope", FuzzEnvelope},
      {"fuzz_body", FuzzBody},
      {"fuzz_http", FuzzHttp},
      {"fuzz_broker_url", FuzzBrokerUrl},
      {"fuzz_task_query", FuzzTaskQuery},
      {"fuzz_resp", FuzzResp},
      {"fuzz_config", FuzzConfig},
      {"fuzz_control_reply", FuzzControlReply},
      {"fuzz_auth", FuzzAuth},
  };
  return kTargets;
}

}  // namespace stalk::fuzz
