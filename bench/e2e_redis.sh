#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# e2e_redis.sh: end-to-end benchmark from a real Redis (issue "Core", bench/README.md). For each run:
# a private redis-server (127.0.0.1, free port, no persistence, Redis's default
# client-output-buffer-limit pubsub 32mb 8mb 60, so Redis cuts a slow subscriber exactly as in
# production), `stalk serve` subscribed to it, then bench/redis_publisher publishing a realistic
# Celery event stream for DURATION seconds at RATE events/s. After the publisher stops, Stalk is given
# time to drain (events_ingested stable and its queue empty), and the run prints published vs
# ingested events, queue drops, reconnects (one means Redis disconnected the subscriber), and the CPU
# time and RSS of Stalk, redis-server and the publisher — all three share the machine's cores.
#
#   bench/e2e_redis.sh 200000       one run at 200,000 events/s
#   bench/e2e_redis.sh ramp         RATES (default 100k 150k 200k 250k 300k), REPEATS runs each; prints the
#                                   highest rate at which every run lost nothing
# Environment: BUILD_DIR (build-bench), DURATION (30 s), REPEATS (2), RATES, STALK_ARGS (extra serve
# flags; default "--db none": memory only, what the figure measures), STOP_AFTER_FAIL (1: stop the
# ramp after the first rate with a lossy run).
# Bounded: at most |RATES| x REPEATS runs, each DURATION + at most ~2.5 min of start-up and drain.
# Redis, Stalk and the publisher each run in their own session (setsid), so each gets its own
# scheduler autogroup, as separate services do in production; in one shared session the kernel would
# split a single share of the CPU between all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
STALK=$PWD/$BUILD_DIR/src/cli/stalk
PUBLISHER=$PWD/$BUILD_DIR/bench/redis_publisher
DURATION=${DURATION:-30}
REPEATS=${REPEATS:-2}
RATES=${RATES:-"100000 150000 200000 250000 300000"}
STALK_ARGS=${STALK_ARGS:---db none}
STOP_AFTER_FAIL=${STOP_AFTER_FAIL:-1}
CLK_TCK=$(getconf CLK_TCK)

for bin in "$STALK" "$PUBLISHER"; do
  [[ -x $bin ]] || { echo "e2e_redis: missing $bin (ninja -C $BUILD_DIR stalk redis_publisher)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "e2e_redis: needs redis-server (scripts/bootstrap.sh)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/stalk-e2e.XXXXXX)
REDIS_PID=""
STALK_PID=""
stop_pid() {  # stop_pid PID: SIGTERM, then SIGKILL after 10 s
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$STALK_PID"
  stop_pid "$REDIS_PID"
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
cpu_seconds() {  # utime + stime of a live process, in seconds
  awk -v t="$CLK_TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"
}
status_mib() {  # status_mib PID VmRSS|VmHWM
  awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}
wait_until() {  # wait_until SECONDS WHAT COMMAND...: poll every 0.1 s until COMMAND succeeds
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "e2e_redis: timed out waiting for $what" >&2; return 1; fi
    sleep 0.1
  done
}
machine_busy() {  # busy CPU seconds of the whole machine since boot (all cores)
  awk -v t="$CLK_TCK" '$1 == "cpu" {printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / t}' /proc/stat
}
stat_field() {  # stat_field JSON KEY
  /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"
}

# run_once RATE: prints one result line; returns 0 when nothing was lost.
run_once() {
  local rate=$1 rport hport
  rport=$(free_port)
  hport=$(free_port)
  setsid redis-server --bind 127.0.0.1 --port "$rport" --save "" --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis-$rport.log" >/dev/null 2>&1 &
  REDIS_PID=$!
  wait_until 10 "redis-server" bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $rport ping) == PONG ]]" || return 1
  (cd "$WORK" && exec setsid "$STALK" serve --broker "redis://127.0.0.1:$rport/0" --port "$hport" --max_tasks 1000000 \
    --logging warning $STALK_ARGS >"$WORK/stalk.log" 2>&1) &
  STALK_PID=$!
  wait_until 15 "Stalk's subscription" bash -c "(( \$(redis-cli -h 127.0.0.1 -p $rport pubsub numpat) >= 1 ))" || return 1
  local stats_url="http://127.0.0.1:$hport/api/stalk/stats"
  wait_until 10 "Stalk's HTTP API" curl -sf "$stats_url" || return 1
  local stalk_cpu0 redis_cpu0
  stalk_cpu0=$(cpu_seconds "$STALK_PID")
  redis_cpu0=$(cpu_seconds "$REDIS_PID")
  local busy0 wall0=$SECONDS
  busy0=$(machine_busy)

  local pub_out
  pub_out=$(setsid "$PUBLISHER" --port "$rport" --rate "$rate" --duration "$DURATION" 2>"$WORK/publisher.log") || {
    echo "e2e_redis: publisher failed: $(tail -2 "$WORK/publisher.log")" >&2
  }
  local published achieved pub_cpu
  published=$(grep -oP 'published events=\K[0-9]+' <<<"$pub_out" || echo 0)
  achieved=$(grep -oP ' rate=\K[0-9]+' <<<"$pub_out" || echo 0)
  pub_cpu=$(grep -oP 'publisher_cpu_seconds=\K[0-9.]+' <<<"$pub_out" || echo 0)

  # Drain: events_ingested unchanged over 2 s and the ingest queue empty, within 120 s.
  local json last=-1 stable=0 deadline=$((SECONDS + 120)) ingested=0
  while ((SECONDS < deadline)); do
    json=$(curl -sf "$stats_url" || echo '{}')
    ingested=$(stat_field "$json" events_ingested)
    if [[ $ingested == "$last" && $(stat_field "$json" queue_bytes) == 0 ]]; then
      stable=$((stable + 1))
      ((stable >= 4)) && break
    else
      stable=0
    fi
    last=$ingested
    sleep 0.5
  done
  local stalk_cpu redis_cpu rss hwm dropped reconnects rejected high_water
  stalk_cpu=$(awk -v a="$(cpu_seconds "$STALK_PID")" -v b="$stalk_cpu0" 'BEGIN {printf "%.1f", a - b}')
  redis_cpu=$(awk -v a="$(cpu_seconds "$REDIS_PID")" -v b="$redis_cpu0" 'BEGIN {printf "%.1f", a - b}')
  # Everything else that ran on the machine meanwhile (other users' jobs), as a share of all cores.
  local others
  others=$(awk -v b="$(machine_busy)" -v b0="$busy0" -v s="$stalk_cpu" -v r="$redis_cpu" -v p="$pub_cpu" \
    -v w=$((SECONDS - wall0)) -v n="$(nproc)" 'BEGIN {o = (b - b0 - s - r - p) / (w > 0 ? w : 1); printf "%.2f", o < 0 ? 0 : o}')
  rss=$(status_mib "$STALK_PID" VmRSS)
  hwm=$(status_mib "$STALK_PID" VmHWM)
  dropped=$(stat_field "$json" queue_dropped)
  reconnects=$(stat_field "$json" reconnects)
  rejected=$(stat_field "$json" rejected_total)
  high_water=$(stat_field "$json" queue_high_water_bytes)
  high_water=$(( ${high_water:-0} / 1048576 ))
  local cut
  # Redis logs each subscriber it cuts for passing client-output-buffer-limit.
  cut=$(grep -c "overcoming of output buffer limits" "$WORK/redis-$rport.log" || true)
  stop_pid "$STALK_PID"
  STALK_PID=""
  stop_pid "$REDIS_PID"
  REDIS_PID=""
  local lost=$((published - ingested))
  printf '%8s %9s %10s %10s %8s %7s %6s %5s %6s %6s %6s %6s %6s %6s %6s\n' "$rate" "$achieved" "$published" "$ingested" \
    "$lost" "$dropped" "$reconnects" "$cut" "$stalk_cpu" "$redis_cpu" "$pub_cpu" "$others" "$rss" "$hwm" "$high_water"
  [[ $lost == 0 && $dropped == 0 && $reconnects == 0 && $rejected == 0 ]]
}

header() {
  echo "# $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "${DURATION}s per run; stalk serve --max_tasks 1000000 $STALK_ARGS; redis-server $(redis-server --version | grep -oP 'v=\K[0-9.]+')"
  echo "# CPU columns are seconds over the run (publish + drain); Stalk, Redis and the publisher share the same cores;"
  echo "# 'others' is the CPU (in cores) that other jobs on the machine used meanwhile."
  printf '%8s %9s %10s %10s %8s %7s %6s %5s %6s %6s %6s %6s %6s %6s %6s\n' target achieved published ingested lost \
    dropped recon cut stalk redis pub others rss_mb hwm_mb queue
  printf '%8s %9s %10s %10s %8s %7s %6s %5s %6s %6s %6s %6s %6s %6s %6s\n' ev/s ev/s events events events msgs "" "" cpu_s \
    cpu_s cpu_s cores "" "" hw_mb
}

if [[ ${1:-} == ramp ]]; then
  header
  best=0
  for rate in $RATES; do
    clean=1
    for _ in $(seq "$REPEATS"); do
      run_once "$rate" || clean=0
    done
    if ((clean)); then
      best=$rate
    elif ((STOP_AFTER_FAIL)); then
      break
    fi
  done
  echo "highest rate with zero loss in every run: $best events/s"
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  header
  run_once "$1" && echo "zero loss" || echo "LOSS"
else
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
