// Stalk — Celery monitoring server.
// Resident set size of this process, for stalk_process_resident_memory_bytes.
#pragma once

#include <cstdint>
#include <optional>

namespace stalk {

// Bytes resident in memory, from /proc/self/statm (Linux); nullopt where it cannot be read.
std::optional<uint64_t> ResidentMemoryBytes();

}  // namespace stalk
