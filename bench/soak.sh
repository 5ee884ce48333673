#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# soak.sh: the soak benchmark (issue 11; bench/soak.py does the work, bench/README.md has figures).
# MINUTES at RATE events/s from a real redis-server, with workers joining and leaving, /metrics
# scraped every 5 s and the API queried every 0.5 s; prints RSS at start / after warm-up / end, the
# RSS slope after warm-up, events published vs ingested, and API p50/p99 per minute.
#
#   bench/soak.sh                     30 minutes at 50,000 events/s (the issue's figure)
#   MINUTES=2 bench/soak.sh --check   the CI version (ctest -L soak runs it with bounds)
# Environment: BUILD_DIR (build; needs targets stalk and redis_publisher), MINUTES (30), RATE (50000),
# STALK_ARGS (extra serve flags; default "--db none"). Extra arguments go to soak.py (--check,
# --max_slope, --max_p99_ms, --warmup).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
for bin in "$BUILD_DIR/src/cli/stalk" "$BUILD_DIR/bench/redis_publisher"; do
  [[ -x $bin ]] || { echo "soak: missing $bin (ninja -C $BUILD_DIR stalk redis_publisher)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "soak: needs redis-server (scripts/bootstrap.sh)" >&2; exit 2; }
exec /usr/bin/python3 bench/soak.py --stalk "$BUILD_DIR/src/cli/stalk" --publisher "$BUILD_DIR/bench/redis_publisher" \
  --minutes "${MINUTES:-30}" --rate "${RATE:-50000}" --stalk_args "${STALK_ARGS:---db none}" "$@"
