// Stalk — Celery monitoring server.
#include "metrics/histogram.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace stalk {

const std::vector<double>& DefaultHistogramBounds() {
  static const std::vector<double> kBounds = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                              0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
  return kBounds;
}

std::vector<double> NormalizeBounds(const std::vector<double>& bounds) {
  if (bounds.empty()) {
    return DefaultHistogramBounds();
  }
  std::vector<double> out;
  for (double b : bounds) {
    if (std::isfinite(b)) {
      out.push_back(b);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string FormatBound(double bound) {
  if (std::isinf(bound)) {
    return bound > 0 ? "+Inf" : "-Inf";
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), bound);
  std::string s(buf, end);
  // Python's repr keeps a ".0" on integral floats ("1.0", "10.0"); shortest round-trip drops it.
  if (s.find_first_of(".e") == std::string::npos) {
    s += ".0";
  }
  return s;
}

void Histogram::Observe(const std::vector<double>& bounds, double value) {
  if (std::isnan(value)) {
    return;  // would poison _sum forever; no bucket can hold it
  }
  if (counts.empty()) {
    counts.resize(bounds.size() + 1);
  }
  const size_t i = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), value) - bounds.begin());
  ++counts[i];
  sum += value;
  ++count;
}

}  // namespace stalk
