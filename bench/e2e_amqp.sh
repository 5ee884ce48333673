#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# e2e_amqp.sh: end-to-end benchmark from a real RabbitMQ, next to e2e_redis.sh (bench/README.md).
# Starts one private rabbitmq-server (127.0.0.1, free ports, its own node name and data directory,
# run as the rabbitmq user as Debian's scripts do), then for each run: `stalk serve --broker amqp://`
# consuming its event queue, and bench/amqp_publisher publishing a realistic Celery event stream to
# the celeryev exchange for DURATION seconds at RATE events/s. After the publisher stops, Stalk is
# given time to drain (events_ingested stable), and the run prints published vs ingested events,
# reconnects, and the CPU seconds of Stalk, RabbitMQ and the publisher — all share the machine's cores.
#
#   bench/e2e_amqp.sh 30000        one run at 30,000 events/s
#   bench/e2e_amqp.sh ramp         RATES (default 20k 40k 60k 80k 100k), one run each; prints the
#                                  highest rate that lost nothing
# Environment: BUILD_DIR (build), DURATION (15 s), RATES, STALK_ARGS (default "--db none").
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
STALK=$PWD/$BUILD_DIR/src/cli/stalk
PUBLISHER=$PWD/$BUILD_DIR/bench/amqp_publisher
DURATION=${DURATION:-15}
RATES=${RATES:-"20000 40000 60000 80000 100000"}
STALK_ARGS=${STALK_ARGS:---db none}
CLK_TCK=$(getconf CLK_TCK)

for bin in "$STALK" "$PUBLISHER"; do
  [[ -x $bin ]] || { echo "e2e_amqp: missing $bin (cmake --build $BUILD_DIR --target stalk amqp_publisher)" >&2; exit 2; }
done
command -v rabbitmq-server >/dev/null || { echo "e2e_amqp: needs rabbitmq-server (scripts/bootstrap.sh)" >&2; exit 2; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
WORK=$(mktemp -d /tmp/stalk-e2e-amqp.XXXXXX)
NODE="stalkbench$$@localhost"
APORT=$(free_port)
export RABBITMQ_NODENAME=$NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$APORT \
  RABBITMQ_DIST_PORT=$(free_port) RABBITMQ_MNESIA_BASE=$WORK/mnesia RABBITMQ_LOG_BASE=$WORK/log \
  RABBITMQ_ENABLED_PLUGINS_FILE=$WORK/enabled_plugins RABBITMQ_PID_FILE=$WORK/rabbit.pid
mkdir -p "$WORK/mnesia" "$WORK/log"
echo '[].' >"$WORK/enabled_plugins"
chown -R rabbitmq:rabbitmq "$WORK"
RABBIT_STARTED=""
STALK_PID=""
stop_pid() {
  local pid=$1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$STALK_PID"
  [[ -n $RABBIT_STARTED ]] && HOME=$WORK rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cpu_seconds() { awk -v t="$CLK_TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$1/stat"; }
status_mib() { awk -v k="$2:" '$1 == k {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
stat_field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$1" "$2"; }
amqp_up() {
  /usr/bin/python3 -c 'import amqp,sys; c=amqp.Connection("127.0.0.1:"+sys.argv[1], connect_timeout=1); c.connect(); c.close()' "$APORT"
}

HOME=$WORK setsid rabbitmq-server >"$WORK/rabbit.out" 2>&1 &
RABBIT_STARTED=1
for _ in $(seq 300); do amqp_up >/dev/null 2>&1 && break; sleep 0.3; done
amqp_up || { echo "e2e_amqp: rabbitmq-server did not start: $(tail -5 "$WORK/rabbit.out")" >&2; exit 1; }
rabbit_pid() { cat "$WORK/rabbit.pid" 2>/dev/null || pgrep -f "beam.*$NODE" | head -1; }

run_once() {
  local rate=$1 hport
  hport=$(free_port)
  (cd "$WORK" && exec setsid "$STALK" serve --broker "amqp://guest:guest@127.0.0.1:$APORT//" --port "$hport" \
    --max_tasks 1000000 --logging warning $STALK_ARGS >"$WORK/stalk.log" 2>&1) &
  STALK_PID=$!
  local stats_url="http://127.0.0.1:$hport/api/stalk/stats" json
  for _ in $(seq 150); do
    json=$(curl -sf "$stats_url" || echo '{}')
    [[ $(stat_field "$json" broker_connected) == True ]] && break
    sleep 0.1
  done
  local rpid stalk_cpu0 rabbit_cpu0
  rpid=$(rabbit_pid)
  stalk_cpu0=$(cpu_seconds "$STALK_PID")
  rabbit_cpu0=$(cpu_seconds "$rpid")
  local pub_out
  pub_out=$(setsid "$PUBLISHER" --port "$APORT" --rate "$rate" --duration "$DURATION" \
    --pool_tasks $(( rate * DURATION / 4 + 20000 )) 2>"$WORK/publisher.log") || echo "e2e_amqp: publisher failed: $(tail -2 "$WORK/publisher.log")" >&2
  local published achieved pub_cpu
  published=$(grep -oP 'published events=\K[0-9]+' <<<"$pub_out" || echo 0)
  achieved=$(grep -oP ' rate=\K[0-9]+' <<<"$pub_out" || echo 0)
  pub_cpu=$(grep -oP 'publisher_cpu_seconds=\K[0-9.]+' <<<"$pub_out" || echo 0)
  local last=-1 stable=0 deadline=$((SECONDS + 120)) ingested=0
  while ((SECONDS < deadline)); do
    json=$(curl -sf "$stats_url" || echo '{}')
    ingested=$(stat_field "$json" events_ingested)
    if [[ $ingested == "$last" && $(stat_field "$json" queue_bytes) == 0 ]]; then
      stable=$((stable + 1)); ((stable >= 4)) && break
    else
      stable=0
    fi
    last=$ingested
    sleep 0.5
  done
  local stalk_cpu rabbit_cpu rss reconnects
  stalk_cpu=$(awk -v a="$(cpu_seconds "$STALK_PID")" -v b="$stalk_cpu0" 'BEGIN {printf "%.1f", a - b}')
  rabbit_cpu=$(awk -v a="$(cpu_seconds "$rpid")" -v b="$rabbit_cpu0" 'BEGIN {printf "%.1f", a - b}')
  rss=$(status_mib "$STALK_PID" VmRSS)
  reconnects=$(stat_field "$json" reconnects)
  stop_pid "$STALK_PID"
  STALK_PID=""
  local lost=$((published - ingested))
  if ((lost != 0)); then
    echo "# publisher: $pub_out" >&2
    echo "# stalk: messages_received=$(stat_field "$json" messages_received) rejected_total=$(stat_field "$json" rejected_total) queue_dropped=$(stat_field "$json" queue_dropped)" >&2
  fi
  printf '%8s %9s %10s %10s %8s %6s %6s %7s %6s %6s\n' "$rate" "$achieved" "$published" "$ingested" "$lost" \
    "$reconnects" "$stalk_cpu" "$rabbit_cpu" "$pub_cpu" "$rss"
  [[ $lost == 0 && $reconnects == 0 ]]
}

echo "# $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); ${DURATION}s per run; stalk serve --max_tasks 1000000 $STALK_ARGS;" \
  "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null)"
printf '%8s %9s %10s %10s %8s %6s %6s %7s %6s %6s\n' target achieved published ingested lost recon stalk rabbit pub rss_mb
if [[ ${1:-} == ramp ]]; then
  best=0
  for rate in $RATES; do
    if run_once "$rate"; then best=$rate; else break; fi
  done
  echo "highest rate with zero loss: $best events/s"
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
  run_once "$1" && echo "zero loss" || echo "LOSS"
else
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
