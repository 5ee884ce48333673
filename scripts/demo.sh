#!/usr/bin/env bash
# Live demo: a private redis-server on 127.0.0.1, a real Celery worker with sample tasks that
# succeed, fail, retry and sleep, a small steady load, and `stalk serve` on http://127.0.0.1:5555.
# Ctrl-C stops everything it started. Ports: STALK_DEMO_REDIS_PORT (6390), STALK_DEMO_PORT (5555).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/bootstrap.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target stalk

REDIS_PORT=${STALK_DEMO_REDIS_PORT:-6390}
HTTP_PORT=${STALK_DEMO_PORT:-5555}
DIR=$(mktemp -d /tmp/stalk-demo.XXXXXX)
export BROKER_URL="redis://127.0.0.1:${REDIS_PORT}/0"
pids=()
cleanup() {
  echo; echo "demo: stopping"
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  >"$DIR/redis.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

(cd demo && exec setsid /usr/bin/python3 -m celery -A app worker -E -P prefork -c 2 -n demo@%h \
  --loglevel WARNING >"$DIR/worker.log" 2>&1) & pids+=($!)
(cd demo && exec setsid /usr/bin/python3 load.py --rate 4 >"$DIR/load.log" 2>&1) & pids+=($!)

setsid "$ROOT/build/src/cli/stalk" serve --broker "$BROKER_URL" --address 127.0.0.1 --port "$HTTP_PORT" --db "$DIR/stalk.db" \
  2>&1 | tee "$DIR/stalk.log" & pids+=($!)

cat <<MSG

  Stalk demo running (logs in $DIR):
    dashboard  http://127.0.0.1:${HTTP_PORT}/
    API        http://127.0.0.1:${HTTP_PORT}/api/tasks?limit=10
    workers    http://127.0.0.1:${HTTP_PORT}/api/workers
    queues     http://127.0.0.1:${HTTP_PORT}/api/queues/length
    metrics    http://127.0.0.1:${HTTP_PORT}/metrics
    health     http://127.0.0.1:${HTTP_PORT}/healthcheck
  Ctrl-C to stop.

MSG
wait
