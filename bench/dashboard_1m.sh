#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# dashboard_1m.sh: the tasks page with 1M tasks in Stalk, measured in a real browser (issue 5).
# Starts a private redis-server (127.0.0.1, free port, no persistence) and `stalk serve --max_tasks
# 1000000 --db none` subscribed to it; fills Stalk through the real ingest path with
# bench/redis_publisher (a realistic Celery event stream, ~4.3 events per task) until it holds TASKS
# tasks; then runs bench/web/tasks_page_timing.mjs (Debian's headless chromium via playwright-core):
# first paint, first rows, and each filter change, timed inside the page. Prints the figures.
# Bounded: the fill stops at TASKS tracked tasks or after FILL_SECONDS (default 120); not run by CI.
#
#   bench/dashboard_1m.sh            TASKS=1000000 RUNS=5 RATE=150000 BUILD_DIR=build
# Needs: the stalk binary and redis_publisher (ninja -C $BUILD_DIR stalk redis_publisher),
# redis-server, node, /usr/bin/chromium, and tests/integration/web/node_modules (npm install there,
# as the browser test does).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
STALK=$PWD/$BUILD_DIR/src/cli/stalk
PUBLISHER=$PWD/$BUILD_DIR/bench/redis_publisher
TASKS=${TASKS:-1000000}
RUNS=${RUNS:-5}
RATE=${RATE:-150000}
FILL_SECONDS=${FILL_SECONDS:-120}

for bin in "$STALK" "$PUBLISHER"; do
  [[ -x $bin ]] || { echo "dashboard_1m: missing $bin (ninja -C $BUILD_DIR stalk redis_publisher)" >&2; exit 2; }
done
[[ -f tests/integration/web/node_modules/playwright-core/package.json ]] ||
  (cd tests/integration/web && npm install --no-audit --no-fund >/dev/null)

WORK=$(mktemp -d /tmp/stalk-dash1m.XXXXXX)
REDIS_PID="" STALK_PID="" PUB_PID=""
stop_pid() {  # SIGTERM, then SIGKILL after 10 s
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$PUB_PID"
  stop_pid "$STALK_PID"
  stop_pid "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "dashboard_1m: timed out waiting for $what" >&2; return 1; fi
    sleep 0.1
  done
}
stat_field() {  # stat_field KEY: from Stalk's /api/stalk/stats
  curl -sf "http://127.0.0.1:$hport/api/stalk/stats" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}

rport=$(free_port)
hport=$(free_port)
redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
wait_until 10 "redis-server" bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $rport ping) == PONG ]]"
(cd "$WORK" && exec "$STALK" serve --broker "redis://127.0.0.1:$rport/0" --address 127.0.0.1 --port "$hport" \
  --max_tasks 1000000 --db none --logging warning >"$WORK/stalk.log" 2>&1) &
STALK_PID=$!
wait_until 15 "Stalk's subscription" bash -c "(( \$(redis-cli -h 127.0.0.1 -p $rport pubsub numpat) >= 1 ))"
wait_until 10 "Stalk's HTTP API" curl -sf "http://127.0.0.1:$hport/api/stalk/stats"

echo "# filling Stalk with $TASKS tasks from redis_publisher at $RATE events/s (at most ${FILL_SECONDS} s)"
fill0=$SECONDS
"$PUBLISHER" --port "$rport" --rate "$RATE" --duration "$FILL_SECONDS" --pool_tasks 100000 >"$WORK/pub.log" 2>&1 &
PUB_PID=$!
while kill -0 "$PUB_PID" 2>/dev/null && (($(stat_field tasks_tracked) < TASKS)); do sleep 0.5; done
stop_pid "$PUB_PID"
PUB_PID=""
# Let ingestion drain: the queue empty and the count stable.
last=-1
for _ in $(seq 120); do
  now_count=$(stat_field events_ingested)
  [[ $now_count == "$last" && $(stat_field queue_bytes) == 0 ]] && break
  last=$now_count
  sleep 0.5
done
tracked=$(stat_field tasks_tracked)
rss=$(awk '$1 == "VmRSS:" {printf "%.0f", $2 / 1024}' "/proc/$STALK_PID/status")
echo "# Stalk holds $tracked tasks (filled in $((SECONDS - fill0)) s; RSS ${rss} MiB); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

node bench/web/tasks_page_timing.mjs "http://127.0.0.1:$hport/" "$RUNS"
