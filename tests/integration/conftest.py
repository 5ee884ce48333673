"""pytest fixtures for Stalk's integration tests: real redis-server, real Celery workers, the real
stalk binary, all on 127.0.0.1 with ports chosen here and data under a per-module temp dir.

Fixtures (module scope unless noted):
  stalk_bin       path of the binary: $STALK_BIN, else build/src/cli/stalk
  redis_server    private redis-server (harness.RedisServer: .url .port .client() .kill() .start())
  stalk           stalk serve against redis_server, ready and subscribed (harness.Stalk)
  worker          Celery worker w1@stalktest on queue "celery" (prefork -c 2, -E), started after stalk
  celery_app      client-side Celery app (tests/fixtures/app.py make_app) on the same broker/backend
  get_json        stalk.get_json
  wait_for        harness.wait_for(cond, timeout, what) (tests also use harness.wait_until)
  start_worker    (function scope) start_worker(name, queues="celery", concurrency=2) -> ready Worker,
                  stopped (group-killed) at teardown

Every process runs in its own process group; teardown kills the group. When a test fails, the
tails of the logs of every process still running (stalk, workers, redis) are attached to its report.
"""
import os
import sys
from pathlib import Path

import pytest

import harness
from harness import RedisServer, Stalk, Worker, free_port, tail, wait_for as _wait_for

sys.path.insert(0, str(harness.FIXTURES))
import app as celery_fixture_app  # noqa: E402  (tests/fixtures/app.py)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for label, path in list(harness.LIVE_LOGS.items()):
            rep.sections.append((f"log of {label}: {path}", tail(path)))


@pytest.fixture(scope="session")
def stalk_bin():
    env_bin = os.environ.get("STALK_BIN")
    path = Path(env_bin) if env_bin else harness.DEFAULT_STALK_BIN
    if not (path.is_file() and os.access(path, os.X_OK)):
        if env_bin:
            pytest.fail(f"STALK_BIN={env_bin} is not an executable file")
        pytest.skip(f"stalk binary not built ({path}); build it or set STALK_BIN")
    return path


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory, request):
    return tmp_path_factory.mktemp(request.module.__name__.replace("test_", ""))


@pytest.fixture(scope="module")
def redis_server(module_tmp):
    server = RedisServer(free_port(), module_tmp / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stalk(stalk_bin, redis_server, module_tmp):
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk").start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()  # a crash during the module is an error of the module, not a silent pass
    finally:
        s.stop()


@pytest.fixture(scope="module")
def worker(stalk, redis_server, module_tmp):
    # Depends on `stalk` so stalk is subscribed before the worker says worker-online.
    w = Worker("w1@stalktest", redis_server.url, module_tmp / "w1").start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop()


@pytest.fixture
def start_worker(redis_server, module_tmp):
    started = []

    def start(name, queues="celery", concurrency=2):
        w = Worker(name, redis_server.url, module_tmp / name.replace("@", "_"),
                   queues=queues, concurrency=concurrency).start()
        started.append(w)
        return w.wait_ready()

    yield start
    for w in started:
        w.stop()


@pytest.fixture(scope="module")
def celery_app(redis_server):
    client = celery_fixture_app.make_app(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def get_json(stalk):
    return stalk.get_json


@pytest.fixture(scope="session")
def wait_for():
    return _wait_for
