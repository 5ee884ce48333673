// Stalk — Celery monitoring server.
// Histogram: one Prometheus histogram series (per-bucket counts, sum, count) over bucket bounds shared
// by every series of a Metrics instance. The bounds live once in Metrics; a series keeps only its
// counts, allocated at the first observation, so a label set that never observed costs 32 bytes.
// Also the bucket helpers: Flower's default bounds and the `le` spelling Flower's client writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stalk {

// prometheus_client's Histogram.DEFAULT_BUCKETS, which Flower (--task_runtime_metric_buckets) and
// celery-exporter (--buckets) both default to. +Inf is implicit.
const std::vector<double>& DefaultHistogramBounds();

// Sorted, de-duplicated finite bounds; +Inf and NaN are dropped (+Inf is always the last bucket).
// An empty input gives DefaultHistogramBounds().
std::vector<double> NormalizeBounds(const std::vector<double>& bounds);

// The `le` label value as prometheus_client spells it ("0.005", "1.0", "+Inf"), so Stalk's series
// are byte-identical to Flower's.
std::string FormatBound(double bound);

struct Histogram {
  std::vector<uint64_t> counts;  // per bucket, not cumulative; the last slot is the +Inf bucket
  double sum = 0;
  uint64_t count = 0;

  // Adds `value` to the first bucket whose bound is >= value (Prometheus' `le` rule).
  void Observe(const std::vector<double>& bounds, double value);
};

}  // namespace stalk
