// Stalk — Celery monitoring server.
#include "common/load_shed.h"

namespace stalk {

std::string_view ShedStageName(ShedStage stage) {
  switch (stage) {
    case ShedStage::kStoreEvents:
      return "store_events";
    case ShedStage::kCustomEvents:
      return "custom_events";
    case ShedStage::kQueueFull:
      return "queue_full";
    case ShedStage::kCount:
      break;
  }
  return "unknown";
}

bool LoadShed::Update(size_t queue_bytes, size_t max_bytes) {
  if (max_bytes == 0) {
    return false;
  }
  const uint64_t permille = static_cast<uint64_t>(queue_bytes) * 1000 / max_bytes;
  const uint8_t current = level_.load(std::memory_order_relaxed);
  uint8_t next = current;
  // Rise to every stage whose start is reached; fall below a stage once under half its start.
  while (next < kStartPermille.size() && permille >= kStartPermille[next]) {
    ++next;
  }
  while (next > 0 && permille < kStartPermille[next - 1] / 2) {
    --next;
  }
  if (next == current) {
    return false;
  }
  level_.store(next, std::memory_order_relaxed);
  if (next > current) {
    rises_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

}  // namespace stalk
