// Stalk — Celery monitoring server.
// IngestStats: counters shared by the ingest pipeline (writer), transports and the readers of
// /api/stalk/stats, /healthcheck and /metrics. Plain relaxed atomics: each is independently exact,
// a reader may see them at slightly different instants.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "common/load_shed.h"

namespace stalk {

constexpr size_t kRejectReasonSlots = 8;  // >= RejectReason::kCount (protocol/reject_reason.h)

struct IngestStats {
  std::atomic<uint64_t> messages_received{0};  // broker messages read by the transport
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> messages_decoded{0};                         // messages taken off the queue by the writer
  std::atomic<uint64_t> events_ingested{0};                          // events applied to the state
  std::array<std::atomic<uint64_t>, kRejectReasonSlots> rejected{};  // by RejectReason
  std::atomic<uint64_t> queue_dropped{0};  // messages dropped because the ingest queue was full
  LoadShed shed;                           // what is given up while the writer falls behind
  std::atomic<uint64_t> queue_bytes{0};    // bytes waiting between reader and writer
  std::atomic<uint64_t> queue_high_water_bytes{0};
  std::atomic<bool> broker_connected{false};
  std::atomic<uint64_t> reconnects{0};  // successful connections after the first
  std::atomic<uint64_t> connection_failures{0};
  std::atomic<uint64_t> partial_messages_discarded{0};  // connections lost mid-message (the rest discarded)
  std::atomic<double> last_connected_at{0};
  std::atomic<double> last_disconnected_at{0};
  std::atomic<double> last_event_at{0};       // receiver clock of the last applied event
  std::atomic<double> ingest_lag_seconds{0};  // now - event timestamp, last applied event
  std::atomic<uint64_t> unsupported_serializer_logged{0};
};

}  // namespace stalk
