#!/usr/bin/env bash
# Stalk — Celery monitoring server.
# restart_1m.sh: start-up with a big history (issue "durable task history"): `stalk serve --db` on a
# SQLite file of TASKS stored tasks, a private redis-server on 127.0.0.1. For each of RUNS starts it
# prints, from the moment the process is spawned:
#   serving   the first HTTP answer (/healthcheck 200); events are already being received and queued
#   whole     /healthcheck no longer says "restoring history": every stored task is in the live state
# plus Stalk's own restore_seconds and its CPU time. The file is made once with bench/store_bench
# (STALK_BENCH_KEEP_DB) and kept at DB for later runs (~2 min for 1M tasks, 740 MiB).
#   bench/restart_1m.sh                 TASKS=1000000 RUNS=3 DB=/tmp/stalk-restart-<TASKS>.db
# Environment: BUILD_DIR (build), TASKS, RUNS, DB.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
TASKS=${TASKS:-1000000}
RUNS=${RUNS:-3}
DB=${DB:-/tmp/stalk-restart-$TASKS.db}
STALK=$PWD/$BUILD_DIR/src/cli/stalk
STORE_BENCH=$PWD/$BUILD_DIR/bench/store_bench
for bin in "$STALK" "$STORE_BENCH"; do
  [[ -x $bin ]] || { echo "restart_1m: missing $bin (ninja -C $BUILD_DIR stalk store_bench)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "restart_1m: needs redis-server (scripts/bootstrap.sh)" >&2; exit 2; }
if [[ ! -f $DB ]]; then
  echo "restart_1m: writing $TASKS stored tasks to $DB (once)"
  STALK_BENCH_KEEP_DB=$DB "$STORE_BENCH" restore "$TASKS"
fi
WORK=$(mktemp -d /tmp/stalk-restart.XXXXXX)
trap 'kill $(cat "$WORK/redis.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT
REDIS_PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$WORK/redis.pid" --dir "$WORK" --logfile "$WORK/redis.log"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); file $(du -m "$DB" | cut -f1) MiB"
/usr/bin/python3 - "$STALK" "$DB" "$TASKS" "$RUNS" "$REDIS_PORT" "$WORK" <<'PY'
import json, os, signal, socket, subprocess, sys, time, urllib.request
stalk, db, tasks, runs, redis_port, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
tck = os.sysconf("SC_CLK_TCK")
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status, r.read().decode()
    except Exception:
        return 0, ""
for run in range(1, runs + 1):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    p = subprocess.Popen([stalk, "serve", "--broker", f"redis://127.0.0.1:{redis_port}/0", "--port", str(port),
                          "--address", "127.0.0.1", "--db", db, "--max_tasks", str(tasks)],
                         stdout=open(f"{work}/stalk-{run}.log", "w"), stderr=subprocess.STDOUT)
    serving = whole = None
    deadline = t0 + 120
    while time.monotonic() < deadline and p.poll() is None:
        status, text = get(base + "/healthcheck")
        now = time.monotonic() - t0
        if status == 200 and serving is None:
            serving = now
        if status == 200 and "restoring history" not in text:
            whole = now
            break
        time.sleep(0.005)
    _, stats = get(base + "/api/stalk/stats")
    st = json.loads(stats) if stats else {}
    store = st.get("store", {})
    with open(f"/proc/{p.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / tck
    p.send_signal(signal.SIGTERM); p.wait(30)
    fmt = lambda v: f"{v:.2f} s" if v is not None else "not reached"
    print(f"run {run}: serving {fmt(serving)}, whole {fmt(whole)} ({store.get('restored_tasks')} tasks, "
          f"restore {store.get('restore_seconds', 0):.2f} s), stalk CPU {cpu:.2f} s")
PY
