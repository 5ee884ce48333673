"""Stalk on RabbitMQ (AMQP 0-9-1): a private rabbitmq-server (Debian package) started by this module
on 127.0.0.1 with its own node name, ports and data directory, a real Celery worker (-E) and the
stalk binary with --broker amqp://... (celery-protocol.md §2.2, §3.5, §4.2, §5.3).

Covers: the event queue's flags and arguments, task states and worker liveness from events, queue
lengths by passive declare and by the management API (--broker_api), remote control (inspect +
pool/grow), sending a task through stalk, a broker restart mid-stream (stalk reconnects with a fresh
queue, reports the gap, ingestion and control resume), a wrong password, and the event queue of a
SIGKILLed stalk vanishing from the broker.
One rabbitmq-server for the whole module (it takes 5-20 s to start on a loaded machine).
"""
import json
import os
import re
import shutil
import tempfile
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import amqp
import pytest

import app as fixture_app
from harness import FatalError, Proc, Stalk, Worker, free_port, tail, wait_for, wait_until

W1 = "w1@stalkamqp"
NOT_CONSUMED = "stalk_amqp_idle"   # a queue nobody consumes: its messages stay put
EXPIRES_S = 3                      # --event_queue_expires for every stalk here

pytestmark = pytest.mark.skipif(shutil.which("rabbitmq-server") is None, reason="rabbitmq-server not installed")


class RabbitServer:
    """A private rabbitmq-server; restartable on the same ports and data."""

    def __init__(self):
        # Not under pytest's 0700 temp dirs: the server runs as the rabbitmq user and must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="stalk-rmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.mgmt_port = free_port()  # the management plugin's HTTP API (Flower's --broker_api)
        self.node = f"stalk{uuid.uuid4().hex[:10]}@localhost"
        self.proc = None

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def api_url(self):
        return f"http://guest:guest@127.0.0.1:{self.mgmt_port}/api/"

    def env(self):
        env = dict(os.environ)
        env.update(RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                   RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(self.dist_port),
                   RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"), RABBITMQ_LOG_BASE=str(self.dir / "log"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
                   RABBITMQ_PID_FILE=str(self.dir / "pid"), HOME=str(self.dir),
                   RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                       f'-rabbitmq_management tcp_config [{{port,{self.mgmt_port}}},{{ip,"127.0.0.1"}}]'))
        return env

    def start(self, timeout=90):
        if self.proc is None:
            (self.dir / "mnesia").mkdir(parents=True, exist_ok=True)
            (self.dir / "log").mkdir(parents=True, exist_ok=True)
            (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n")
            shutil.chown(self.dir, "rabbitmq", "rabbitmq")
            for p in self.dir.rglob("*"):
                shutil.chown(p, "rabbitmq", "rabbitmq")
        self.proc = Proc("rabbitmq-server", ["rabbitmq-server"], self.dir / "server.log",
                         env=self.env(), cwd=self.dir).start()
        wait_for(self._ready, timeout, f"rabbitmq-server on port {self.port} to accept AMQP logins", interval=0.3)
        return self

    def _ready(self):
        if not self.proc.alive():
            raise FatalError(f"rabbitmq-server exited: {tail(self.proc.log, 3000)}")
        with self.connection():
            return True

    def connection(self):
        c = amqp.Connection(f"127.0.0.1:{self.port}", userid="guest", password="guest", virtual_host="/",
                            connect_timeout=2)
        c.connect()
        return c

    def queue_exists(self, name):
        with self.connection() as c:
            ch = c.channel()
            try:
                ch.queue_declare(name, passive=True)
                return True
            except amqp.exceptions.ResourceLocked:
                return True  # exclusive to another connection (stalk's): it exists
            except amqp.exceptions.NotFound:
                return False

    def ctl(self, *args, timeout=60):
        return subprocess.run(["rabbitmqctl", "-n", self.node, *args], env=self.env(), capture_output=True,
                              text=True, timeout=timeout)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.alive():
            try:
                self.ctl("stop", timeout=60)
            except subprocess.TimeoutExpired:
                pass
            self.proc.wait(30)
        self.proc.stop(timeout=5)  # and whatever of its group is left

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def rabbit(module_tmp):
    server = RabbitServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


def stalk_queue(stalk, after=0):
    """The event queue named in stalk's log by its (n-th) 'consuming'/'reconnected' line."""
    names = re.findall(r"(celeryev\.stalk\.[0-9a-f-]{36})", stalk.proc.log.read_text(errors="replace"))
    return names[after] if len(names) > after else None


def start_stalk(stalk_bin, rabbit, work_dir, *extra):
    s = Stalk(stalk_bin, rabbit.url, work_dir, extra_args=[
        "--event_queue_expires", str(EXPIRES_S), "--inspect_timeout", "1500", "--queues", NOT_CONSUMED,
        "--db", "none", *extra]).start()
    wait_for(lambda: s.check_alive() or s.request("/healthcheck", timeout=2).status == 200, 30,
             "stalk to connect to RabbitMQ (/healthcheck 200)")
    wait_for(lambda: stalk_queue(s), 10, "stalk to log its event queue")
    return s


@pytest.fixture(scope="module")
def stalk(stalk_bin, rabbit, module_tmp):
    s = start_stalk(stalk_bin, rabbit, module_tmp / "stalk")
    try:
        yield s
        s.check_alive()
    finally:
        s.stop()


@pytest.fixture(scope="module")
def worker(stalk, rabbit, module_tmp):
    w = Worker(W1, rabbit.url, module_tmp / "w1")
    w.proc.env["RESULT_BACKEND"] = "rpc://"
    w.start()
    try:
        w.wait_ready(60)
        wait_until(stalk.workers_status, lambda s: s.get(W1) is True, 20, f"{W1} online in /api/workers")
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def client(rabbit):
    app = fixture_app.make_app(rabbit.url, "rpc://")
    yield app
    app.close()


def test_event_queue_is_private_and_expiring(rabbit, stalk):
    name = stalk_queue(stalk)
    out = rabbit.ctl("list_queues", "name", "durable", "auto_delete", "exclusive", "arguments").stdout
    line = next((l for l in out.splitlines() if l.startswith(name)), None)
    assert line is not None, out
    assert "false\ttrue\ttrue" in line, line  # not durable, auto-delete, exclusive
    assert f'"x-expires",{EXPIRES_S * 1000}' in line.replace(" ", "") and '"x-message-ttl",5000' in line.replace(" ", ""), line
    bindings = rabbit.ctl("list_bindings", "source_name", "destination_name", "routing_key").stdout
    assert f"celeryev\t{name}\t#" in bindings, bindings


def test_task_states_and_worker_online(stalk, worker, client):
    ok = client.tasks["app.add"].delay(2, 3)
    bad = client.tasks["app.fail"].delay("boom on rabbit")
    info = wait_until(lambda: stalk.task(ok.id), lambda t: t.get("state") == "SUCCESS", 30, "add to succeed")
    assert info["result"] == "5" and info["worker"] == W1, info
    info = wait_until(lambda: stalk.task(bad.id), lambda t: t.get("state") == "FAILURE", 30, "fail to fail")
    assert "boom on rabbit" in info["exception"], info
    tasks = stalk.tasks()
    assert tasks[ok.id]["state"] == "SUCCESS" and tasks[bad.id]["state"] == "FAILURE"
    assert stalk.workers_status()[W1] is True
    stats = stalk.stats()
    assert stats["broker_connected"] is True, stats


def queue_lengths(stalk):
    body = stalk.get_json("/api/queues/length")
    return {e["name"]: e["messages"] for e in body["active_queues"]}


def test_queue_length_by_passive_declare(stalk, client, rabbit):
    with rabbit.connection() as c:  # as Celery would: a durable queue
        c.channel().queue_declare(NOT_CONSUMED, durable=True, auto_delete=False)
    for i in range(4):
        client.tasks["app.add"].apply_async((i, i), queue=NOT_CONSUMED)
    wait_until(lambda: queue_lengths(stalk), lambda q: q.get(NOT_CONSUMED) == 4, 15,
               f"/api/queues/length to report 4 messages in {NOT_CONSUMED}")
    # A queue that does not exist counts 0 (the 404 does not break the next reads).
    assert queue_lengths(stalk).get("celery") == 0


def test_consumer_counts_in_api_and_metrics(stalk, worker):
    """Passive declare also says how many consumers a queue has: the worker's queue has one."""
    def consumers():
        return {e["name"]: e.get("consumers") for e in stalk.get_json("/api/queues/length")["active_queues"]}
    got = wait_until(consumers, lambda c: (c.get("celery") or 0) >= 1, 20, "the worker's queue to show a consumer")
    assert got.get(NOT_CONSUMED) == 0, got
    wait_until(lambda: stalk.request("/metrics").text,
               lambda t: any(l.startswith('celery_active_consumer_count{queue_name="celery"}') and float(l.split()[-1]) >= 1
                             for l in t.splitlines()), 30, "celery_active_consumer_count for the worker's queue")


def test_doctor_on_rabbitmq(stalk_bin, rabbit, worker, module_tmp):
    """stalk doctor follows RabbitMQ too: login, ping over celery.pidbox, events on a private queue."""
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STALK_", "FLOWER_", "CELERY_"))}
    out = subprocess.run([str(stalk_bin), "doctor", "--broker", rabbit.url, "--timeout", "5", "--db",
                          str(module_tmp / "none.db")], capture_output=True, text=True, timeout=90, env=env)
    lines = {l.split()[1] if len(l.split()) > 1 else l: l for l in out.stdout.splitlines()}
    text = out.stdout
    assert "PASS  broker reachable" in text, text
    assert "guest:guest" not in text, "the password must not be printed"
    assert any(l.startswith("PASS  workers answer") and W1 in l for l in text.splitlines()), text
    assert any(l.startswith("PASS  events arrive") and W1 in l for l in text.splitlines()), text
    assert any(l.startswith("PASS  heartbeats fresh") for l in text.splitlines()), text
    bad = subprocess.run([str(stalk_bin), "doctor", "--broker",
                          rabbit.url.replace("guest:guest@", "guest:stalk_dev_wrong_password@"), "--timeout", "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert bad.returncode == 1 and "FAIL  broker reachable" in bad.stdout, bad.stdout
    assert "stalk_dev_wrong_password" not in bad.stdout
    del lines


def test_queue_length_from_the_management_api(stalk_bin, rabbit, module_tmp, stalk):
    """--broker_api (Flower's): one GET /api/queues/%2F; `messages` counts ready + unacked."""
    wait_until(lambda: queue_lengths(stalk), lambda q: q.get(NOT_CONSUMED) == 4, 15, "4 messages by passive declare")
    s = start_stalk(stalk_bin, rabbit, module_tmp / "stalk-api", "--broker_api", rabbit.api_url)
    try:
        # The management API samples queue stats every few seconds: wait for it to catch up.
        wait_until(lambda: queue_lengths(s), lambda q: q.get(NOT_CONSUMED) == 4, 30,
                   f"/api/queues/length via --broker_api to report 4 messages in {NOT_CONSUMED}")
        log = [l for l in s.proc.log.read_text(errors="replace").splitlines() if not l.startswith("=====")]
        assert not [l for l in log if "using passive queue.declare" in l], log
        assert not [l for l in log if "guest:guest" in l], log  # passwords never logged
    finally:
        s.stop()


def test_control_inspect_and_pool_grow(stalk, worker, rabbit):
    wait_for(lambda: stalk.request(f"/api/stalk/inspect/ping?workername={W1}").status == 200, 20,
             f"{W1} to answer a ping over RabbitMQ")
    assert stalk.get_json(f"/api/stalk/inspect/ping?workername={W1}") == {W1: {"ok": "pong"}}

    def processes():
        info = stalk.get_json(f"/api/workers?refresh=1&workername={W1}")[W1]
        return len(info["stats"]["pool"]["processes"])

    assert processes() == 2
    resp = stalk.request(f"/api/worker/pool/grow/{W1}?n=1", method="POST")
    assert resp.status == 200 and resp.json() == {"message": f"Growing '{W1}' worker's pool by 1"}, resp
    wait_for(lambda: processes() == 3, 20, "3 pool processes after pool/grow")
    # Each call deletes its reply queue.
    names = rabbit.ctl("list_queues", "name").stdout.split()
    assert not [n for n in names if n.endswith(".reply.celery.pidbox")], names


def test_task_sent_through_stalk(stalk, worker):
    """PublishTask (default exchange, queue 'celery') and PublishEvent (task-sent on celeryev)."""
    req = urllib.request.Request(stalk.url("/api/task/async-apply/app.add"), data=json.dumps({"args": [20, 22]}).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        task_id = json.loads(resp.read())["task-id"]
    info = wait_until(lambda: stalk.task(task_id), lambda t: t.get("state") == "SUCCESS", 30,
                      "the task sent through stalk to succeed")
    assert info["result"] == "42" and info.get("sent"), info


def test_broker_restart_mid_stream(stalk, worker, client, rabbit):
    add = client.tasks["app.add"]
    burst = [add.delay(i, i) for i in range(20)]
    wait_until(lambda: stalk.tasks(state="SUCCESS"), lambda t: sum(r.id in t for r in burst) >= 3, 30,
               "some of the burst to succeed")
    before = stalk.stats()["reconnects"]
    old_queue = stalk_queue(stalk)

    rabbit.stop()
    wait_until(lambda: stalk.request("/healthcheck"), lambda r: r.status == 503, 30,
               "/healthcheck 503 with RabbitMQ down")
    assert stalk.stats()["broker_connected"] is False
    rabbit.start()

    wait_until(lambda: stalk.request("/healthcheck"), lambda r: r.status == 200, 60,
               "/healthcheck back to 200 after the restart")
    stats = stalk.stats()
    assert stats["reconnects"] >= before + 1, stats
    new_queue = wait_for(lambda: stalk_queue(stalk, 1), 10, "a fresh event queue after the restart")
    assert new_queue != old_queue
    assert "events published while disconnected were not seen" in stalk.proc.log.read_text(errors="replace")

    fresh = fixture_app.make_app(rabbit.url, "rpc://")
    try:
        # The worker reconnects on its own; its events then flow through the new queue.
        new = [fresh.tasks["app.add"].delay(100, i) for i in range(3)]
        for i, r in enumerate(new):
            info = wait_until(lambda: stalk.task(r.id), lambda t: t["state"] == "SUCCESS", 60,
                              f"task {r.id} sent after the restart to reach SUCCESS")
            assert info["result"] == repr(100 + i), info
    finally:
        fresh.close()
    # Remote control after the restart: the pooled control connections died with the broker and
    # are replaced on the next call.
    wait_for(lambda: stalk.request(f"/api/stalk/inspect/ping?workername={W1}").status == 200, 30,
             f"{W1} to answer a ping after the broker restart")


def test_wrong_password_is_reported_without_the_password(stalk_bin, rabbit, module_tmp):
    url = rabbit.url.replace("guest:guest@", "guest:stalk_dev_wrong_password@")
    s = Stalk(stalk_bin, url, module_tmp / "stalk-badpass", extra_args=["--db", "none"]).start()
    try:
        wait_for(lambda: re.search(r"login (failed|refused)", s.proc.log.read_text(errors="replace")), 20,
                 "stalk to log the refused login")
        assert s.request("/healthcheck").status == 503
        log = [l for l in s.proc.log.read_text(errors="replace").splitlines() if not l.startswith("=====")]
        assert not [l for l in log if "stalk_dev_wrong_password" in l], log
    finally:
        s.stop()


def test_killed_stalk_leaves_no_queue(stalk_bin, rabbit, module_tmp):
    s = start_stalk(stalk_bin, rabbit, module_tmp / "stalk-killed")
    name = stalk_queue(s)
    try:
        assert rabbit.queue_exists(name)
    finally:
        s.proc.kill()  # SIGKILL: no goodbye
    killed_at = time.monotonic()
    wait_for(lambda: not rabbit.queue_exists(name), EXPIRES_S + 5,
             f"{name} to disappear within --event_queue_expires={EXPIRES_S}s")
    print(f"event queue gone {time.monotonic() - killed_at:.2f} s after SIGKILL")
