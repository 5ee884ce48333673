// Stalk — Celery monitoring server.
#include "alerts/duration.h"

#include <cctype>
#include <charconv>
#include <cmath>

namespace stalk {

Result<double> ParseRuleDuration(std::string_view text) {
  const Error bad{"invalid duration '" + std::string(text) + "' (expected e.g. 30s, 5m, 1h, 2d)"};
  if (text.empty()) {
    return bad;
  }
  double total = 0;
  size_t i = 0;
  int parts = 0;
  while (i < text.size()) {
    double v = 0;
    auto r = std::from_chars(text.data() + i, text.data() + text.size(), v);
    if (r.ec != std::errc() || v < 0 || !std::isfinite(v)) {
      return bad;
    }
    i = static_cast<size_t>(r.ptr - text.data());
    std::string_view unit;
    const size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    unit = text.substr(unit_start, i - unit_start);
    double scale = 0;
    if (unit.empty()) {
      if (parts > 0 || i != text.size()) {
        return bad;  // a bare number is only allowed alone ("30"), not after another part
      }
      scale = 1;
    } else if (unit == "ms") {
      scale = 0.001;
    } else if (unit == "s") {
      scale = 1;
    } else if (unit == "m") {
      scale = 60;
    } else if (unit == "h") {
      scale = 3600;
    } else if (unit == "d") {
      scale = 86400;
    } else if (unit == "w") {
      scale = 7 * 86400;
    } else {
      return bad;
    }
    total += v * scale;
    ++parts;
  }
  return total;
}

std::string FormatRuleDuration(double seconds) {
  if (seconds <= 0) {
    return "0s";
  }
  if (seconds < 1) {
    return std::to_string(static_cast<long long>(std::llround(seconds * 1000))) + "ms";
  }
  long long s = std::llround(seconds);
  std::string out;
  const long long h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
  if (h)
    out += std::to_string(h) + "h";
  if (m)
    out += std::to_string(m) + "m";
  if (sec || out.empty())
    out += std::to_string(sec) + "s";
  return out;
}

}  // namespace stalk
