// Stalk — Celery monitoring server.
// Glob matching for rule files (alert rules, business-metric rules): `*` any run, `?` one character,
// nothing else special; an empty pattern matches everything.
#pragma once

#include <string_view>

namespace stalk {

bool GlobMatch(std::string_view pattern, std::string_view text);

}  // namespace stalk
