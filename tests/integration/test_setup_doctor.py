"""`stalk doctor` against a real redis-server and a real Celery worker whose task events are off
(started without -E, worker_send_task_events = False): doctor reports it (FAIL, exit 1); with --fix it
broadcasts enable_events, re-checks and passes; afterwards a plain run passes too. Plus the checks
that need no worker: bad broker, unsupported AMQP, store quick_check, auth on a non-loopback bind.
"""
import os
import sqlite3
import subprocess
import threading

import pytest

import harness
from harness import free_port, Worker, wait_for

import app as celery_fixture_app  # tests/fixtures/app.py (conftest puts it on sys.path)

# The fixture app switches task events on in its conf; this one switches them off again.
DOCTOR_APP = """from app import make_app

app = make_app()
app.conf.worker_send_task_events = False
"""


def doctor(stalk_bin, *args, env=None, timeout=90):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "FLOWER_", "CELERY_"))}
    clean.update(env or {})
    return subprocess.run([str(stalk_bin), "doctor", *args], capture_output=True, text=True, timeout=timeout, env=clean)


def line_of(out, name):
    for line in out.splitlines():
        if line[6:].startswith(name):
            return line
    raise AssertionError(f"no '{name}' line in:\n{out}")


@pytest.fixture(scope="module")
def quiet_worker(redis_server, module_tmp):
    work = module_tmp / "w-quiet"
    work.mkdir(parents=True, exist_ok=True)
    (work / "doctorapp.py").write_text(DOCTOR_APP)
    w = Worker("quiet@stalktest", redis_server.url, work)
    cmd = w.proc.cmd
    cmd.remove("-E")
    cmd[cmd.index("-A") + 1] = "doctorapp"
    w.start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.kill()


class TaskStream:
    """Submits app.add tasks every 0.2 s while a doctor run watches the stream."""

    def __init__(self, celery_app):
        self.app = celery_app
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.app.send_task("app.add", args=(1, 2))
            self.sent += 1
            self.stop.wait(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_events_off_reported_then_fixed(stalk_bin, redis_server, quiet_worker, module_tmp):
    client = celery_fixture_app.make_app(redis_server.url)
    db = module_tmp / "doctor.db"
    args = ["--broker", redis_server.url, "--timeout", "6", "--db", str(db)]
    try:
        with TaskStream(client) as stream:
            before = doctor(stalk_bin, *args)
            assert stream.sent > 5
        out = before.stdout
        assert before.returncode == 1, out + before.stderr
        assert line_of(out, "broker reachable").startswith("PASS")
        assert "quiet@stalktest" in line_of(out, "workers answer ping")
        assert line_of(out, "events arrive").startswith("PASS")
        assert "quiet@stalktest" in line_of(out, "events arrive")
        assert line_of(out, "heartbeats fresh").startswith("PASS")
        assert line_of(out, "clock skew").startswith("PASS")
        events = line_of(out, "workers send task events")
        assert events.startswith("FAIL") and "task events are off at quiet@stalktest" in events, out
        assert "fix: stalk doctor --fix" in out
        assert line_of(out, "result backend reachable").startswith("PASS")
        assert line_of(out, "store health").startswith("PASS")
        assert line_of(out, "auth for the bind address").startswith("PASS")

        with TaskStream(client):
            fixed = doctor(stalk_bin, *args, "--fix")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        events = line_of(fixed.stdout, "workers send task events")
        assert events.startswith("PASS"), fixed.stdout
        assert "task events switched on at quiet@stalktest" in events
        assert "re-check: task events now arrive from quiet@stalktest" in events

        with TaskStream(client):
            after = doctor(stalk_bin, *args)
        assert after.returncode == 0, after.stdout
        assert line_of(after.stdout, "workers send task events").startswith("PASS  workers send task events")
        assert "task events from quiet@stalktest" in after.stdout
    finally:
        client.close()


def test_unreachable_broker_fails(stalk_bin, tmp_path):
    port = harness.free_port()
    r = doctor(stalk_bin, "--broker", f"redis://127.0.0.1:{port}/0", "--timeout", "1", "--db", str(tmp_path / "x.db"))
    assert r.returncode == 1
    assert line_of(r.stdout, "broker reachable").startswith("FAIL")
    assert "fix: start Redis" in r.stdout


def test_unreachable_rabbitmq_and_unsupported_brokers(stalk_bin, tmp_path):
    # RabbitMQ is followed (test_rabbitmq.py runs doctor against a real one); nothing listens here.
    r = doctor(stalk_bin, "--broker", f"amqp://guest:stalk_dev_your_password_here@127.0.0.1:{free_port()}//",
               "--timeout", "1", "--db", str(tmp_path / "x.db"))
    assert line_of(r.stdout, "broker reachable").startswith("FAIL"), r.stdout
    assert "stalk_dev_your_password_here" not in r.stdout  # the password is redacted
    assert r.returncode == 1
    r = doctor(stalk_bin, "--broker", "sqs://key:stalk_dev_your_secret_here@", "--timeout", "1",
               "--db", str(tmp_path / "x.db"))
    assert "stalk_dev_your_secret_here" not in r.stdout


def test_store_and_auth_checks(stalk_bin, redis_server, tmp_path):
    good = tmp_path / "good.db"
    with sqlite3.connect(good) as c:
        c.execute("create table t (x)")
        c.executemany("insert into t values (?)", [(i,) for i in range(1000)])
    bad = tmp_path / "bad.db"
    data = bytearray(good.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # trash a b-tree page
    bad.write_bytes(bytes(data))
    base = ["--broker", redis_server.url, "--timeout", "0.5"]
    ok = doctor(stalk_bin, *base, "--db", str(good))
    assert "quick_check ok" in line_of(ok.stdout, "store health")
    broken = doctor(stalk_bin, *base, "--db", str(bad))
    assert line_of(broken.stdout, "store health").startswith("FAIL") and broken.returncode == 1

    open_bind = doctor(stalk_bin, *base, "--db", str(good), "--address", "0.0.0.0")
    assert line_of(open_bind.stdout, "auth for the bind address").startswith("FAIL")
    assert open_bind.returncode == 1
    with_auth = doctor(stalk_bin, *base, "--db", str(good), "--address", "0.0.0.0",
                       env={"STALK_BASIC_AUTH_FILE": str(tmp_path / "users")})
    assert line_of(with_auth.stdout, "auth for the bind address").startswith("PASS")


def test_stalk_server_check(stalk_bin, stalk, redis_server, tmp_path):
    base = ["--broker", redis_server.url, "--timeout", "0.5", "--db", str(tmp_path / "x.db")]
    up = doctor(stalk_bin, *base, "--stalk-url", f"http://127.0.0.1:{stalk.port}")
    assert line_of(up.stdout, "stalk serve healthy").startswith("PASS"), up.stdout
    assert "/healthcheck: OK" in up.stdout
    down = doctor(stalk_bin, *base, "--stalk-url", f"http://127.0.0.1:{harness.free_port()}")
    assert line_of(down.stdout, "stalk serve healthy").startswith("FAIL"), down.stdout
    assert line_of(doctor(stalk_bin, *base).stdout, "stalk serve healthy").startswith("SKIP")
    creds = doctor(stalk_bin, *base, "--stalk-url", f"http://admin:pw_Kx81q@127.0.0.1:{stalk.port}")
    assert line_of(creds.stdout, "stalk serve healthy").startswith("FAIL") and "pw_Kx81q" not in creds.stdout

    # A Stalk whose broker is gone answers 503: doctor says so.
    lost = harness.Stalk(stalk_bin, f"redis://127.0.0.1:{harness.free_port()}/0", tmp_path / "lost").start()
    try:
        def unhealthy():
            lost.check_alive()
            try:
                return lost.request("/healthcheck", timeout=2).status == 503
            except OSError:
                return False
        wait_for(unhealthy, 20, "the broker-less stalk to answer /healthcheck with 503")
        r = doctor(stalk_bin, *base, "--stalk-url", f"http://127.0.0.1:{lost.port}/")
        line = line_of(r.stdout, "stalk serve healthy")
        assert line.startswith("FAIL") and "answers 503: broker unreachable" in line, r.stdout
    finally:
        lost.stop()
