// Stalk — Celery monitoring server.
// Base64 decoding of kombu's message bodies (standard alphabet, padding optional, no line breaks —
// kombu's Base64 codec never emits any). Hot path: table driven, writes into a reused buffer.
#pragma once

#include <string>
#include <string_view>

namespace stalk {

// Decodes `in` into `out` (cleared first). Returns false on a character outside the alphabet or a
// length that cannot be base64; `out` is then unspecified.
bool Base64Decode(std::string_view in, std::string& out);

std::string Base64Encode(std::string_view in);

}  // namespace stalk
