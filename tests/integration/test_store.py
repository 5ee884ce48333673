"""Durable history (src/store/): what stalk keeps across restarts and crashes, on real servers.

  test_restart_keeps_tasks        real Celery worker; SIGTERM stalk, start it again on the same --db:
                                  same tasks, states and results; workers back; with a small
                                  --max_tasks the older tasks are still served by /api/task/info
                                  and found by /api/stalk/history
  test_restart_100k_tasks         100k tasks streamed through a real Redis (received, then succeeded or
                                  failed), SIGTERM, start again: /api/tasks gives the same tasks,
                                  states, results and order
  test_events_during_restore      300k stored tasks: stalk serves and receives while it restores them;
                                  events published meanwhile are applied after the restore (a live
                                  task-succeeded beats the restored STARTED record) and none is lost
  test_kill_9_during_burst        kill -9 during a burst of events, ROUNDS times on one file: each time
                                  `PRAGMA integrity_check` is ok and every task counted as committed
                                  (store.rows_committed, read just before the kill) is in the file
  test_disk_full_then_recovers    --db on a tiny tmpfs: writes fail, live API keeps serving,
                                  /healthcheck and /metrics say so; space returns -> every row lands
  test_postgres_shared_history    a private PostgreSQL server; two stalk instances on the same Redis
                                  and database write one consistent history

Synthetic events are PUBLISHed with redis-py as a Celery 5.2 worker sends them (harness.task_event).
"""
import glob
import os
import re
import shutil
import sqlite3 as sqlite_db
import signal
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

from harness import Stalk, event_channel, free_port, kombu_envelope, tail, task_event, wait_for, wait_until

TASK_MULTI = event_channel("task.multi")
ROUNDS = int(os.environ.get("STALK_STORE_CRASH_ROUNDS", "5"))
FINAL = {"SUCCESS", "FAILURE", "REJECTED", "REVOKED"}


def start_stalk(stalk_bin, redis_server, work_dir, *args):
    s = Stalk(stalk_bin, redis_server.url, work_dir, extra_args=list(args)).start()
    s.wait_ready(redis_server)
    return s


def store_stats(s):
    st = s.stats()
    assert isinstance(st.get("store"), dict), f"/api/stalk/stats has no store block: {st}"
    return st["store"]


def sqlite(db, sql):
    out = subprocess.run(["sqlite3", str(db), sql], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"sqlite3 {db} {sql!r}: {out.stderr}"
    return out.stdout.strip()


def publish_tasks(client, ids, hostname="burst@stalktest", per_message=50, receivers=1, **fields):
    """task-received for each id, grouped as a prefork worker groups them (task.multi lists)."""
    for i in range(0, len(ids), per_message):
        events = [task_event("task-received", tid, hostname=hostname, name="burst.task", args="(1,)",
                             kwargs="{}", retries=0, root_id=tid, parent_id=None, **fields)
                  for tid in ids[i:i + per_message]]
        assert client.publish(TASK_MULTI, kombu_envelope(events, hostname=hostname)) >= receivers


# --------------------------------------------------------------------------------------------
# Restart with a real Celery worker
# --------------------------------------------------------------------------------------------

def test_restart_keeps_tasks(stalk_bin, redis_server, module_tmp, start_worker, celery_app):
    db = module_tmp / "restart" / "history.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    a = start_stalk(stalk_bin, redis_server, module_tmp / "restart-a", "--db", db)
    try:
        start_worker("wstore@stalktest")
        t = celery_app.tasks
        ids = [t["app.add"].delay(i, i).id for i in range(12)]
        ids += [t["app.fail"].delay("boom").id, t["app.retry_once"].delay(7).id, t["app.reject"].delay().id]

        def all_final():
            tasks = a.tasks()
            return tasks if all(tasks.get(i, {}).get("state") in FINAL for i in ids) else None
        before = wait_for(all_final, 30, "stalk to show every task in a final state")
        workers_before = a.workers_status()
        assert "wstore@stalktest" in workers_before
    finally:
        a.stop()
    assert a.proc.returncode() == 0, tail(a.proc.log)
    assert sqlite(db, "PRAGMA integrity_check") == "ok"

    b = start_stalk(stalk_bin, redis_server, module_tmp / "restart-b", "--db", db)
    try:
        after = b.tasks()
        for tid in ids:
            assert tid in after, f"task {tid} lost across the restart"
            for key in ("name", "state", "result", "exception", "args", "kwargs", "retries", "worker",
                        "received", "started", "succeeded", "failed", "runtime", "timestamp"):
                assert after[tid][key] == before[tid][key], (tid, key, before[tid], after[tid])
        assert after[ids[-1]]["state"] == "REJECTED"
        assert after[ids[-2]]["retries"] == 1 and after[ids[-2]]["state"] == "SUCCESS"
        assert set(after) >= set(before)
        # Same order as before the restart (newest first, in the order tasks were created): SQLite's
        # rowids follow the order rows were first written, which is the order tasks were created.
        order_after = [i for i in after if i in before]
        assert order_after == list(before), (
            "order changed across the restart:\n" +
            "\n".join(f"{a} {b} {before[a]['name']}" for a, b in zip(before, order_after)))
        assert "wstore@stalktest" in b.get_json("/api/workers")
        st = store_stats(b)
        assert st["ok"] is True and st["backend"] == "sqlite"
        assert st["restored_tasks"] >= len(ids)
    finally:
        b.stop()

    # Beyond memory: only the 3 newest tasks are kept in memory; older ones come from the store.
    c = start_stalk(stalk_bin, redis_server, module_tmp / "restart-c", "--db", db, "--max_tasks", "3")
    try:
        assert len(c.tasks()) == 3
        oldest = ids[0]
        info = c.task(oldest)
        assert info["task-id"] == oldest and info["state"] == "SUCCESS" and info["result"] == before[oldest]["result"]
        assert info["received"] == before[oldest]["received"]
        c.task(str(uuid.uuid4()), expect=404)
        # Searching history goes to the store: every task, though only 3 are in memory.
        adds = c.get_json("/api/stalk/history?taskname=app.add&limit=100")
        assert set(adds) == set(ids[:12])
        stamps = [t["timestamp"] for t in adds.values()]
        assert stamps == sorted(stamps, reverse=True), "history is newest first"
        assert ids[12] in c.get_json("/api/stalk/history?state=FAILURE")
        assert list(c.get_json("/api/stalk/history?search=boom")) == [ids[12]]
        assert c.get_json("/api/stalk/history?workername=nobody@nowhere") == {}
        page1 = c.get_json("/api/stalk/history?taskname=app.add&limit=5")
        page2 = c.get_json(f"/api/stalk/history?taskname=app.add&before={stamps[4]!r}")
        assert list(page1) == list(adds)[:5] and list(page2) == list(adds)[5:], "before= pages without gaps or repeats"
        c.get_json("/api/stalk/history?limit=x", expect=400)
        c.get_json("/api/stalk/history?before=yesterday", expect=400)
    finally:
        c.stop()


# --------------------------------------------------------------------------------------------
# 100k tasks from a real Redis stream, across a restart
# --------------------------------------------------------------------------------------------

def test_restart_100k_tasks(stalk_bin, redis_server, module_tmp):
    db = module_tmp / "restart-100k" / "history.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    total = 100_000
    a = start_stalk(stalk_bin, redis_server, module_tmp / "restart-100k-a", "--db", db, "--max_tasks", "200000")
    try:
        client = redis_server.client()
        ids = [str(uuid.uuid4()) for _ in range(total)]
        publish_tasks(client, ids, per_message=100)
        for i in range(0, total, 100):  # every 7th task fails, the others succeed
            done = [task_event("task-failed", tid, hostname="burst@stalktest", exception="ValueError('x')",
                               traceback="Traceback ...") if (i + j) % 7 == 0 else
                    task_event("task-succeeded", tid, hostname="burst@stalktest", result=repr(i + j), runtime=0.01)
                    for j, tid in enumerate(ids[i:i + 100])]
            client.publish(TASK_MULTI, kombu_envelope(done, hostname="burst@stalktest"))
        wait_until(lambda: a.get_json("/api/stalk/summary"),
                   lambda sm: sum(sm["tasks"]["by_state"].get(k, 0) for k in ("SUCCESS", "FAILURE")) >= total, 120,
                   "stalk to apply 100k finished tasks")
        before = a.get_json("/api/tasks?limit=0")
        assert len(before) == total
    finally:
        a.stop()  # SIGTERM: the writer flushes what is queued
    assert a.proc.returncode() == 0, tail(a.proc.log)
    assert int(sqlite(db, "SELECT COUNT(*) FROM tasks")) == total

    b = start_stalk(stalk_bin, redis_server, module_tmp / "restart-100k-b", "--db", db, "--max_tasks", "200000")
    try:
        after = b.get_json("/api/tasks?limit=0")
        assert list(after) == list(before), "the same tasks in the same order"
        keys = ("name", "state", "result", "exception", "worker", "received", "succeeded", "failed", "runtime")
        diff = [tid for tid in before if any(after[tid][k] != before[tid][k] for k in keys)]
        assert not diff, f"{len(diff)} tasks differ after the restart, e.g. {before[diff[0]]} vs {after[diff[0]]}"
        assert sum(1 for t in after.values() if t["state"] == "FAILURE") == len(range(0, total, 7))
        print(f"restored {store_stats(b)['restored_tasks']} tasks in {store_stats(b)['restore_seconds']:.2f} s")
    finally:
        b.stop()


# --------------------------------------------------------------------------------------------
# Events that arrive while start-up restores history
# --------------------------------------------------------------------------------------------

def test_events_during_restore(stalk_bin, redis_server, module_tmp):
    db = module_tmp / "during" / "history.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    start_stalk(stalk_bin, redis_server, module_tmp / "during-a", "--db", db).stop()  # creates the schema
    stored, started = 300_000, 2_000  # the newest `started` stored tasks are still running (STARTED)
    now = time.time()
    ids = [str(uuid.uuid4()) for _ in range(stored)]
    con = sqlite_db.connect(db)
    con.executemany(
        "INSERT INTO tasks (id, name, state, worker, received, started, timestamp, args, kwargs, updated_at)"
        " VALUES (?, 'old.task', ?, 'old@stalktest', ?, ?, ?, '(1,)', '{}', ?)",
        ((tid, "STARTED" if i >= stored - started else "SUCCESS", now - stored + i, now - stored + i,
          now - stored + i, now) for i, tid in enumerate(ids)))
    con.commit()
    con.close()

    s = Stalk(stalk_bin, redis_server.url, module_tmp / "during-b",
              extra_args=["--db", str(db), "--max_tasks", "400000"]).start()
    try:
        wait_for(lambda: s.request("/healthcheck", timeout=2).status > 0, 20, "stalk to answer HTTP")
        s.wait_subscribed(redis_server)
        client = redis_server.client()
        running = ids[-started:]
        new_ids = [str(uuid.uuid4()) for _ in range(started)]
        during = 0
        for i in range(0, started, 100):
            restoring = "restoring history" in s.request("/healthcheck").text
            done = [task_event("task-succeeded", tid, hostname="old@stalktest", result="2", runtime=0.5)
                    for tid in running[i:i + 100]]
            client.publish(TASK_MULTI, kombu_envelope(done, hostname="old@stalktest"))
            publish_tasks(client, new_ids[i:i + 100], per_message=100)
            during += restoring
        print(f"{during} of {started // 100} batches were published while stalk was restoring")
        s.wait_restored(60)

        def applied():
            st = s.stats()
            return st if st["task_events"] >= 2 * started else None
        wait_for(applied, 60, "stalk to apply the events published during the restore")
        assert store_stats(s)["restored_tasks"] == stored
        for tid in running[:: started // 20] + [running[-1]]:
            info = s.task(tid)
            assert info["state"] == "SUCCESS", f"{tid}: the restored STARTED record beat a newer live event: {info}"
        for tid in new_ids[:: started // 20] + [new_ids[-1]]:
            assert s.task(tid)["state"] == "RECEIVED"
        assert s.get_json("/api/tasks?limit=1&state=STARTED") == {}, "a restored STARTED task was not updated"
        assert len(s.get_json(f"/api/tasks?limit={started + 10}&taskname=burst.task")) == started
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------
# kill -9 during a burst
# --------------------------------------------------------------------------------------------

class Burst(threading.Thread):
    """PUBLISHes task-received events for fresh task ids until stopped; one row per task."""

    def __init__(self, client):
        super().__init__(daemon=True)
        self.client = client
        self.stop_flag = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        try:
            while not self.stop_flag.is_set():
                ids = [str(uuid.uuid4()) for _ in range(200)]
                publish_tasks(self.client, ids, per_message=100, receivers=0)  # goes on past the kill
                self.sent += len(ids)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def stop(self):
        self.stop_flag.set()
        self.join(10)
        assert self.error is None, f"publisher failed: {self.error!r}"


def revoke(s):
    task = str(uuid.uuid4())
    assert s.request(f"/api/task/revoke/{task}", method="POST").status == 200
    return task


def test_audit_log_survives_restart(stalk_bin, redis_server, module_tmp):
    db = module_tmp / "audit" / "history.db"
    s = start_stalk(stalk_bin, redis_server, module_tmp / "audit", "--db", db)
    try:
        task = revoke(s)
        wait_for(lambda: sqlite(db, f"SELECT action FROM audit_log WHERE target = '{task}'") == "revoke", 20,
                 "the revoke to reach the audit_log table")
    finally:
        s.stop()
    s = start_stalk(stalk_bin, redis_server, module_tmp / "audit", "--db", db)
    try:
        audit = s.get_json("/api/admin/audit?limit=10")
        assert audit["source"] == "store", audit
        entry = next(e for e in audit["entries"] if e["target"] == task)
        assert entry["action"] == "revoke" and entry["actor"] == "-" and entry["role"] == "open"
        assert entry["remote"] == "127.0.0.1" and entry["result"] == "ok"
    finally:
        s.stop()


def test_kill_9_during_burst(stalk_bin, redis_server, module_tmp):
    db = module_tmp / "crash" / "history.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    stored = 0
    for round_ in range(ROUNDS):
        s = start_stalk(stalk_bin, redis_server, module_tmp / f"crash-{round_}", "--db", db)
        burst = Burst(redis_server.client())
        burst.start()
        try:
            # Heavy ingestion with commits happening, then read what was committed and kill at once.
            wait_until(lambda: store_stats(s), lambda st: st["rows_committed"] >= 3000, 30,
                       "the store to commit 3000 tasks of the burst")
            committed = store_stats(s)["rows_committed"]
            s.proc.kill()  # SIGKILL, no chance to flush
        finally:
            burst.stop()
            s.stop()
        assert sqlite(db, "PRAGMA integrity_check") == "ok", f"round {round_}: corrupt after kill -9"
        count = int(sqlite(db, "SELECT COUNT(*) FROM tasks"))
        assert count >= stored + committed, (
            f"round {round_}: {committed} tasks were committed before the kill, "
            f"but the file holds {count - stored} new ones")
        assert int(sqlite(db, "SELECT COUNT(*) FROM tasks WHERE state != 'RECEIVED' OR name != 'burst.task'")) == 0
        print(f"round {round_}: committed before kill {committed}, in file {count - stored} new, "
              f"published {burst.sent}")
        stored = count
    # The last file opens in stalk and restores.
    s = start_stalk(stalk_bin, redis_server, module_tmp / "crash-final", "--db", db, "--max_tasks", "1000000")
    try:
        st = store_stats(s)
        assert st["restored_tasks"] == stored, st
        assert s.stats()["tasks_tracked"] == stored
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------
# Disk full (a tiny tmpfs), then space returns
# --------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_tmpfs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def metric(text, name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_disk_full_then_recovers(stalk_bin, redis_server, module_tmp, tiny_tmpfs):
    db = tiny_tmpfs / "stalk.db"
    s = start_stalk(stalk_bin, redis_server, module_tmp / "full", "--db", db)
    try:
        client = redis_server.client()
        big = "x" * 3000
        ids = []
        seen = {}

        # Fill the 512 KiB until the store fails, and keep adding rows until /healthcheck and /metrics
        # both report it (a retry between two checks could otherwise fit a small batch).
        def degraded():
            batch = [str(uuid.uuid4()) for _ in range(20)]
            ids.extend(batch)
            publish_tasks(client, batch, per_message=20, eta=big)
            seen["health"] = s.request("/healthcheck")
            seen["metrics"] = s.request("/metrics").text
            return (seen["health"].text.startswith("OK (store degraded: ")
                    and metric(seen["metrics"], "stalk_store_up") == 0)
        wait_for(degraded, 30, "the store to run out of space, reported by /healthcheck and /metrics", interval=0.1)
        health, metrics = seen["health"], seen["metrics"]
        assert health.status == 200, health
        assert "full" in health.text or "I/O" in health.text, (health, store_stats(s))
        assert metric(metrics, "stalk_store_errors_total") >= 1
        # The live state keeps serving.
        last = ids[-1]
        wait_until(lambda: s.request(f"/api/task/info/{last}"), lambda r: r.status == 200, 10,
                   "the live API to show the last task published")
        assert s.task(last)["state"] == "RECEIVED"
        assert store_stats(s)["dropped"] == 0
        # Space returns: every row queued meanwhile lands, health goes back to plain OK.
        r = subprocess.run(["mount", "-o", "remount,size=256m", str(tiny_tmpfs)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: s.request("/healthcheck").text, lambda t: t == "OK", 30, "the store to recover")
        wait_for(lambda: int(sqlite(db, "SELECT COUNT(*) FROM tasks")) == len(ids), 30,
                 "every task published during the outage to be stored")
        assert metric(s.request("/metrics").text, "stalk_store_up") == 1
    finally:
        s.stop()


# --------------------------------------------------------------------------------------------
# PostgreSQL: two instances, one history
# --------------------------------------------------------------------------------------------

def pg_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


class PostgresServer:
    """A private postgres on 127.0.0.1 (initdb in a temp dir, run as the postgres user when root)."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="stalk-pg-")  # not under pytest's 0700 root-owned tree
        self.as_user = os.geteuid() == 0
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")

    def run(self, *cmd):
        line = " ".join(f"'{c}'" for c in cmd)
        full = ["su", "postgres", "-c", line] if self.as_user else ["sh", "-c", line]
        r = subprocess.run(full, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"

    def start(self):
        self.run(f"{self.bindir}/initdb", "-N", "-D", f"{self.dir}/data", "-A", "trust", "-U", "stalk")
        self.run(f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data", "-w", "-l", f"{self.dir}/log", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        self.psql("postgres", "CREATE DATABASE history")
        return self

    def psql(self, db, sql):
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "stalk", "-d", db,
                            "-At", "-c", sql], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"psql {sql!r}: {r.stderr}"
        return r.stdout.strip()

    def url(self, db="history"):
        return f"postgresql://stalk@127.0.0.1:{self.port}/{db}"

    def stop(self):
        try:
            self.run(f"{self.bindir}/pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    bindir = pg_bin()
    if not bindir or not shutil.which("psql"):
        pytest.skip("postgresql server binaries are not installed")
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


def test_postgres_shared_history(stalk_bin, redis_server, module_tmp, postgres):
    url = postgres.url()
    a = start_stalk(stalk_bin, redis_server, module_tmp / "pg-a", "--db", url)
    b = start_stalk(stalk_bin, redis_server, module_tmp / "pg-b", "--db", url)
    try:
        client = redis_server.client()
        ids = [str(uuid.uuid4()) for _ in range(400)]
        outcome = {tid: ("SUCCESS" if i % 4 else "FAILURE") for i, tid in enumerate(ids)}
        publish_tasks(client, ids, hostname="pgw@stalktest", receivers=2)
        for kind in ("task-started", "done"):
            for i in range(0, len(ids), 50):
                events = []
                for tid in ids[i:i + 50]:
                    if kind == "task-started":
                        events.append(task_event("task-started", tid, hostname="pgw@stalktest"))
                    elif outcome[tid] == "SUCCESS":
                        events.append(task_event("task-succeeded", tid, hostname="pgw@stalktest",
                                                 result="42", runtime=0.01))
                    else:
                        events.append(task_event("task-failed", tid, hostname="pgw@stalktest",
                                                 exception="ValueError('x')", traceback="Traceback..."))
                assert client.publish(TASK_MULTI, kombu_envelope(events, hostname="pgw@stalktest")) >= 2
        for s in (a, b):
            wait_until(lambda s=s: s.tasks(), lambda t: all(t.get(i, {}).get("state") == outcome[i] for i in ids),
                       30, "both instances to see every final state")

        def stored():
            rows = postgres.psql("history", "SELECT id || '=' || state FROM tasks WHERE worker = 'pgw@stalktest'")
            got = dict(line.split("=") for line in rows.splitlines() if line)
            return got if got == outcome else None
        wait_for(stored, 30, "PostgreSQL to hold every task with its final state, once")
        assert postgres.psql("history", "SELECT COUNT(*) FROM tasks") == str(len(ids))
        # One timeline per task: received, started, final — not one per instance.
        assert postgres.psql("history", "SELECT COUNT(*) FROM task_transitions") == str(3 * len(ids))
        # each migration applied once though two instances started on the database
        assert postgres.psql("history", "SELECT COUNT(*) FROM schema_version") == postgres.psql(
            "history", "SELECT MAX(version) FROM schema_version")
        # Both instances report every finished task to the cost rollup; each is counted once.
        wait_for(lambda: postgres.psql("history", "SELECT SUM(runs) FROM cost_hourly") == str(len(ids)), 15,
                 "the cost rollup to count each task once")
        for s in (a, b):
            st = store_stats(s)
            assert st["ok"] and st["backend"] == "postgresql" and st["errors"] == 0, st
            assert "***" not in st["location"] and "postgresql://stalk@127.0.0.1" in st["location"]
        revoked = revoke(a)
    finally:
        a.stop()
        b.stop()
    # A restarted instance comes back whole from the shared history, audit log included.
    c = start_stalk(stalk_bin, redis_server, module_tmp / "pg-c", "--db", url)
    try:
        audit = c.get_json("/api/admin/audit")
        assert audit["source"] == "store" and revoked in [e["target"] for e in audit["entries"]], audit
        tasks = c.tasks()
        assert {i: tasks[i]["state"] for i in ids} == outcome
        assert tasks[ids[1]]["result"] == "42" and tasks[ids[0]]["exception"] == "ValueError('x')"
    finally:
        c.stop()
