// Stalk — Celery monitoring server.
// Durations as written in the rules file: "30s", "5m", "1h30m", "2d", "250ms" or a bare number of
// seconds. Parsed once at load time; everything downstream works in double seconds.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace stalk {

// Seconds in `text`; an error naming the text when it is not a duration (negative values included).
Result<double> ParseRuleDuration(std::string_view text);
// The shortest Prometheus-style form of `seconds` ("90s" -> "1m30s", 0 -> "0s").
std::string FormatRuleDuration(double seconds);

}  // namespace stalk
