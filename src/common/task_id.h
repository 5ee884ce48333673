// Stalk — Celery monitoring server.
// Canonical UUID text (8-4-4-4-12 hex) <-> 16 bytes. Celery task ids are uuid4 text unless the caller
// chose its own id; state/ keeps uuids as 16 bytes (compact keys) and other ids as text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace stalk {

using Uuid = std::array<uint8_t, 16>;

// True when `text` is a canonical UUID (either hex case); fills `out`. Upper-case input is accepted but
// only lower-case round-trips exactly, so callers keep upper-case ids as text (see state/task_key.h).
bool ParseUuid(std::string_view text, Uuid& out);

// Writes the 36 lower-case characters of `id` to `out`.
void FormatUuid(const Uuid& id, char* out);
std::string FormatUuid(const Uuid& id);

}  // namespace stalk
