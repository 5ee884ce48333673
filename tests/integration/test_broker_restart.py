"""Broker loss and recovery: redis-server is SIGKILLed while events flow; stalk must report it
(/healthcheck 503, stats), keep serving what it knows, reconnect by itself when redis-server is back
on the same port, and ingest new events, all without being restarted.
"""
import pytest

import app as fixture_app
from harness import Worker, wait_for, wait_until


@pytest.fixture(scope="module")
def worker(stalk, redis_server, module_tmp):
    """w1@stalktest, as in conftest, but stopped with a short grace: after a broker reconnect,
    Celery 5.2's warm shutdown sometimes hangs ~20 s, which is not what this module tests."""
    w = Worker("w1@stalktest", redis_server.url, module_tmp / "w1").start()
    try:
        w.wait_ready()
        yield w
    finally:
        w.stop(timeout=3)


def healthcheck(stalk):
    return stalk.request("/healthcheck", timeout=3)


def test_redis_killed_and_restarted(redis_server, stalk, worker, celery_app):
    add = celery_app.tasks["app.add"]

    resp = healthcheck(stalk)
    assert resp.status == 200 and resp.text.strip() == "OK", resp
    stats = stalk.stats()
    assert stats["broker_connected"] is True, stats
    reconnects_before = stats.get("reconnects", 0)

    # Events flowing: a burst of tasks; kill redis once stalk has seen some of them finish.
    burst = {add.delay(i, i).id for i in range(30)}
    done = wait_until(lambda: set(stalk.tasks(state="SUCCESS")) & burst, lambda s: len(s) >= 5,
                      20, "stalk to see 5 tasks of the burst succeed")
    known = sorted(done)[0]
    redis_server.kill()

    resp = wait_until(lambda: healthcheck(stalk), lambda r: r.status == 503, 15,
                      "/healthcheck to answer 503 with redis-server dead")
    assert resp.text.strip(), "503 must carry a reason"
    stats = stalk.stats()
    assert stats["broker_connected"] is False, stats
    # While the broker is down the API still serves the state already ingested.
    assert known in stalk.tasks()
    assert stalk.task(known)["state"] == "SUCCESS"
    stalk.check_alive()

    redis_server.start()
    wait_until(lambda: healthcheck(stalk), lambda r: r.status == 200, 30,
               "/healthcheck back to 200 after redis restart")
    stalk.wait_subscribed(redis_server, timeout=30)

    # New tasks, from a fresh client (connections of the old one point at the dead server).
    client = fixture_app.make_app(redis_server.url)
    try:
        new = [client.tasks["app.add"].delay(100, i) for i in range(3)]
        wait_for(lambda: {r.id for r in new} <= set(stalk.tasks()), 20,
                 "tasks sent after the restart to show up in /api/tasks")
        stats = stalk.stats()
        assert stats["broker_connected"] is True, stats
        assert stats["reconnects"] >= reconnects_before + 1, stats
        # The worker reconnects on its own (Celery's retry); stalk then follows the tasks to the end.
        for i, r in enumerate(new):
            info = wait_until(lambda: stalk.task(r.id), lambda t: t["state"] == "SUCCESS", 45,
                              f"task {r.id} sent after the restart to reach SUCCESS in stalk")
            assert info["result"] == repr(100 + i), info
    finally:
        client.close()
    stalk.check_alive()
