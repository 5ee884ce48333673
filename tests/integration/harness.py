"""Process and polling helpers for Stalk's integration tests.

Everything here runs real programs on 127.0.0.1: a private redis-server, Celery workers (Debian's
celery through /usr/bin/python3) and the stalk binary. Each process is started in its own session
(so its own process group) and its output goes to a log file; stopping kills the whole group, so a
prefork worker's pool children never outlive a test.

    port = free_port()
    r = RedisServer(port, tmp / "redis"); r.start()
    s = Stalk(stalk_bin, r.url, tmp / "stalk"); s.start(); s.wait_ready(r)
    w = Worker("w1@stalktest", r.url, tmp / "w1"); w.start(); w.wait_ready()
    wait_for(lambda: s.get_json("/api/workers?status=1").get("w1@stalktest"), 15, "w1 online")
    ...
    w.stop(); s.stop(); r.stop()

All waiting is wait_for(cond, timeout, what): poll a condition until it is truthy or the deadline
passes, then fail with `what` and the last value/exception seen. No test sleeps to hide a race.
"""
import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid as uuidlib
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
FIXTURES = REPO / "tests" / "fixtures"
DEFAULT_STALK_BIN = REPO / "build" / "src" / "cli" / "stalk"
# The interpreter that has Debian's celery/kombu/redis-py (celery-protocol.md: 5.2.6/5.2.4/4.3.4).
CELERY_PYTHON = os.environ.get("STALK_TEST_PYTHON", "/usr/bin/python3")

# Registry of live processes' logs, printed into the report of a failing test (see conftest.py).
LIVE_LOGS = {}


# --------------------------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------------------------

class WaitTimeout(AssertionError):
    pass


class FatalError(AssertionError):
    """Raised inside a wait_for condition when waiting longer cannot help (e.g. stalk died)."""


class StalkDied(FatalError):
    pass


def wait_for(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns a truthy value (returned) or `timeout` seconds pass.

    Exceptions raised by cond() count as "not yet" (a server that is still starting refuses
    connections); the last one, or the last falsy value, is quoted in the failure message.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = cond()
            if value:
                return value
            last = value
        except FatalError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure just means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}; last: {last!r}"[:4000])
        time.sleep(interval)


def wait_until(fetch, pred, timeout, what, interval=0.05):
    """Poll fetch() until pred(value) holds; return that value. On timeout the message quotes the
    last value fetched (e.g. the task's JSON), which says more than wait_for's last `False`."""
    box = {}

    def cond():
        box["last"] = value = fetch()
        return pred(value)

    try:
        wait_for(cond, timeout, what, interval)
    except WaitTimeout as exc:
        if "last" in box:
            raise WaitTimeout(f"{exc}; last value: {box['last']!r}"[:4000]) from None
        raise
    return box["last"]


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What ASan, LSan, UBSan and TSan print when they find something (scripts/sanitize.sh builds). ASan
# and UBSan abort stalk at once; LSan speaks only at exit and TSan may be told to go on, so the log is
# read after every stop.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                     "SUMMARY: UndefinedBehaviorSanitizer", ": runtime error: ")


# Sanitizer builds pay memory per allocation (ASan redzones, shadow and quarantine), so a bound on RSS
# growth measured for the real allocator is scaled by this when STALK_SANITIZER names one
# (scripts/sanitize.sh sets it); the bounds still catch growth without limit. 0: not measurable (TSan
# maps shadow for every byte any thread touched, several times the memory itself).
SANITIZER = os.environ.get("STALK_SANITIZER", "")
MEMORY_FACTOR = {"": 1, "thread": 0}.get(SANITIZER, 3)


class SanitizerReport(FatalError):
    pass


def raise_on_sanitizer_report(log_path):
    try:
        text = Path(log_path).read_text(errors="replace")
    except FileNotFoundError:
        return
    for marker in SANITIZER_MARKERS:
        at = text.find(marker)
        if at >= 0:
            raise SanitizerReport(f"{log_path} has a sanitizer report:\n{text[max(0, at - 200):at + 8000]}")


def tail(path, max_bytes=12000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

class Proc:
    """One child process in its own process group, output appended to `log`."""

    def __init__(self, label, cmd, log, env=None, cwd=None):
        self.label = label
        self.cmd = [str(c) for c in cmd]
        self.log = Path(log)
        self.env = env
        self.cwd = cwd
        self.popen = None

    def start(self):
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n===== {time.strftime('%H:%M:%S')} start: {shlex.join(self.cmd)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd, start_new_session=True)
        LIVE_LOGS[f"{self.label} (pid {self.popen.pid})"] = self.log
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def returncode(self):
        return None if self.popen is None else self.popen.poll()

    def send_signal(self, sig):
        """Signal the main process only."""
        if self.alive():
            os.kill(self.popen.pid, sig)

    def signal_group(self, sig):
        if self.popen is None:
            return
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout):
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        """SIGKILL the whole group (no chance to say goodbye) and reap the main process."""
        if self.popen is None:
            return
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Ask the main process to stop, then SIGKILL the whole group (always, for stragglers).

        Returns True when the main process exited on its own within `timeout`.
        """
        if self.popen is None:
            return True
        graceful = True
        if self.alive():
            self.send_signal(sig)
            graceful = self.wait(timeout)
        self.signal_group(signal.SIGKILL)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass
        LIVE_LOGS.pop(f"{self.label} (pid {self.popen.pid})", None)
        return graceful


class RedisServer:
    """A private redis-server on 127.0.0.1:port with no persistence; restartable on the same port."""

    def __init__(self, port, data_dir):
        self.port = port
        self.dir = Path(data_dir)
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=10):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = Proc("redis-server", [
            "redis-server", "--port", self.port, "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--protected-mode", "no",
        ], self.dir / "redis.log", cwd=self.dir).start()
        wait_for(lambda: self._ping(), timeout, f"redis-server on port {self.port} to answer PING")
        return self

    def _ping(self):
        if not self.proc.alive():
            raise RuntimeError(f"redis-server exited: {tail(self.proc.log, 2000)}")
        return self.client(socket_timeout=1).ping()

    def client(self, **kw):
        kw.setdefault("socket_timeout", 5)
        return redis.Redis(host="127.0.0.1", port=self.port, db=0, **kw)

    def kill(self):
        self.proc.kill()

    def stop(self):
        if self.proc is not None:
            self.proc.stop(timeout=5)


class Worker:
    """A Celery worker from tests/fixtures/app.py with task events on (-E)."""

    def __init__(self, name, broker_url, work_dir, queues="celery", concurrency=2, extra=()):
        self.name = name
        self.dir = Path(work_dir)
        env = dict(os.environ)
        env.update(BROKER_URL=broker_url, RESULT_BACKEND=broker_url, PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=str(FIXTURES) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""))
        self.proc = Proc(f"celery worker {name}", [
            CELERY_PYTHON, "-m", "celery", "-A", "app", "worker", "-E", "-P", "prefork",
            "-c", concurrency, "-n", name, "-Q", queues, "--loglevel", "INFO",
            "--without-mingle", "--without-gossip", *extra,
        ], self.dir / "worker.log", env=env, cwd=self.dir)

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc.start()
        return self

    def wait_ready(self, timeout=30):
        def ready():
            if not self.proc.alive():
                raise RuntimeError(f"worker exited: {tail(self.proc.log, 3000)}")
            return "ready." in self.proc.log.read_text(errors="replace")
        wait_for(ready, timeout, f"celery worker {self.name} to log 'ready.'")
        return self

    def stop(self, timeout=20):
        """Warm shutdown (SIGTERM to the main process): the worker sends worker-offline."""
        return self.proc.stop(signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL the main process and its pool children: no worker-offline, no task events."""
        self.proc.kill()


class HttpResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HttpResponse({self.status}, {self.text[:300]!r})"


class Stalk:
    """The stalk binary under test: `stalk serve --broker ... --address 127.0.0.1 --port P`."""

    def __init__(self, binary, broker_url, work_dir, port=None, extra_args=()):
        self.binary = str(binary)
        self.broker_url = broker_url
        self.dir = Path(work_dir)
        self.port = port or free_port()
        extra = list(extra_args) + shlex.split(os.environ.get("STALK_EXTRA_ARGS", ""))
        # Every route, /healthcheck included, moves under --url_prefix.
        prefix = next((extra[i + 1] for i, a in enumerate(extra[:-1]) if a == "--url_prefix"), "")
        self.healthcheck = f"/{prefix.strip('/')}/healthcheck" if prefix.strip("/") else "/healthcheck"
        # Hermetic: stalk reads STALK_*/FLOWER_* settings and broker URLs from the environment.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("STALK_", "FLOWER_")) and k not in ("BROKER_URL", "CELERY_BROKER_URL")}
        # Any default data location ends up in the test's temp dir, never in $HOME or the repo.
        env.update(HOME=str(self.dir), XDG_DATA_HOME=str(self.dir / "data"),
                   XDG_STATE_HOME=str(self.dir / "state"), XDG_CONFIG_HOME=str(self.dir / "config"))
        self.proc = Proc("stalk", [
            self.binary, "serve", "--broker", broker_url, "--address", "127.0.0.1",
            "--port", self.port, *extra,
        ], self.dir / "stalk.log", env=env, cwd=self.dir)
        self.unexpected_exit = None

    def start(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc.start()
        return self

    def check_alive(self):
        if not self.proc.alive():
            raise StalkDied(
                f"stalk exited with status {self.proc.returncode()}; log tail:\n{tail(self.proc.log, 6000)}")

    def wait_ready(self, redis_server, timeout=20):
        """HTTP answers (any status), one of stalk's Redis connections holds a subscription, and the
        start-up restore of history (if any) is over: the API shows the whole state."""
        def http_up():
            self.check_alive()
            return self.request(self.healthcheck, timeout=2).status > 0
        wait_for(http_up, timeout, "stalk to answer HTTP on /healthcheck")
        self.wait_subscribed(redis_server, timeout)
        self.wait_restored(timeout)
        return self

    def wait_restored(self, timeout=20):
        """Block until /healthcheck answers 200 without "restoring history".

        A 503 does not count: until the broker connection is marked up /healthcheck says "broker
        unreachable", which does not mention the restore either (callers wait for the subscription
        first, so the 503 is brief)."""
        def restored():
            self.check_alive()
            resp = self.request(self.healthcheck, timeout=2)
            return resp.status == 200 and "restoring history" not in resp.text
        wait_for(restored, timeout, "stalk to finish restoring history")

    def wait_subscribed(self, redis_server, timeout=20):
        """Block until stalk's connection to redis_server has SUBSCRIBE/PSUBSCRIBE in force.

        Events published before that are lost (PUB/SUB keeps nothing), so tests wait for this
        before they send tasks. stalk's connections are found through /proc (its socket inodes
        -> local ports) and matched against CLIENT LIST.
        """
        def subscribed():
            self.check_alive()
            ports = local_ports_to(self.proc.pid, redis_server.port)
            for c in redis_server.client(socket_timeout=2).client_list():
                port = int(c["addr"].rsplit(":", 1)[1])
                if port in ports and int(c.get("psub", 0)) + int(c.get("sub", 0)) > 0:
                    return c
            return None
        return wait_for(subscribed, timeout, "stalk to subscribe to the event channels")

    def stop(self):
        if self.proc.popen is not None and not self.proc.alive() and self.unexpected_exit is None:
            self.unexpected_exit = self.proc.returncode()
        self.proc.stop(signal.SIGTERM, timeout=10)
        raise_on_sanitizer_report(self.proc.log)

    # ---- HTTP --------------------------------------------------------------------------------

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, path, timeout=10, method="GET"):
        req = urllib.request.Request(self.url(path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return HttpResponse(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return HttpResponse(err.code, dict(err.headers or {}), err.read() or b"")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            self.check_alive()  # a dead stalk is fatal, not a reason to keep polling
            raise

    def get_json(self, path, expect=200):
        resp = self.request(path)
        assert resp.status == expect, f"GET {path}: expected HTTP {expect}, got {resp!r}"
        try:
            return resp.json()
        except ValueError as exc:
            raise AssertionError(f"GET {path}: body is not JSON ({exc}): {resp.text[:500]!r}")

    def tasks(self, **params):
        q = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return self.get_json("/api/tasks" + (f"?{q}" if q else ""))

    def task(self, task_id, expect=200):
        return self.get_json(f"/api/task/info/{task_id}", expect=expect)

    def stats(self):
        return self.get_json("/api/stalk/stats")

    def workers_status(self):
        return self.get_json("/api/workers?status=1")


def local_ports_to(pid, remote_port):
    """Local ports of pid's TCP sockets whose peer port is remote_port (Linux /proc)."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[9] in inodes and int(f[2].rsplit(":", 1)[1], 16) == remote_port:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


# --------------------------------------------------------------------------------------------
# Hand-made kombu messages (celery-protocol.md §1.3, §2.3)
# --------------------------------------------------------------------------------------------

def event_channel(routing_key, db=0):
    return f"/{db}.celeryev/{routing_key}"


def kombu_envelope(body, content_type="application/json", body_encoding="base64",
                   routing_key="task.multi", hostname="hostile@stalktest"):
    """A kombu Redis envelope (JSON text). `body` is a JSON-able object or raw bytes."""
    raw = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
    env = {
        "body": base64.b64encode(raw).decode() if body_encoding == "base64" else raw.decode("latin-1"),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {"hostname": hostname} if hostname else {},
        "properties": {
            "delivery_mode": 1,
            "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
            "priority": 0,
            "delivery_tag": str(uuidlib.uuid4()),
        },
    }
    if body_encoding is not None:
        env["properties"]["body_encoding"] = body_encoding
    return json.dumps(env)


def task_event(type_, task_id, hostname="hostile@stalktest", **fields):
    """A task event as a Celery 5.2 worker sends it."""
    ev = {"hostname": hostname, "utcoffset": 0, "pid": 4242, "clock": 1,
          "uuid": task_id, "timestamp": time.time(), "type": type_}
    ev.update(fields)
    return ev
