"""Worker liveness: online from worker-online/heartbeats, offline on worker-offline (graceful stop)
or on heartbeat expiry (SIGKILL: no goodbye), and the unfinished tasks of a dead worker are `lost`.

Celery's heartbeat interval is 2 s and a worker counts as alive for 2 x freq after its last
heartbeat (celery-protocol.md §2.4), so 15 s is a generous deadline for going offline.
"""
import time

from harness import wait_for, wait_until

OFFLINE_DEADLINE = 15.0


def wait_status(stalk, name, alive, timeout, what):
    """Wait until /api/workers?status=1 says `name` is alive (True) or offline (False)."""
    return wait_until(stalk.workers_status, lambda st: st.get(name) is alive, timeout, what)


def test_worker_online_then_offline_after_graceful_stop(stalk, start_worker):
    name = "w1@stalktest"
    w = start_worker(name)
    wait_status(stalk, name, True, 10, f"{name} online in /api/workers?status=1")

    listed = wait_for(lambda: stalk.get_json("/api/workers").get(name), 10, f"{name} in /api/workers")
    assert isinstance(listed, dict), listed
    one = stalk.get_json(f"/api/workers?workername={name}")
    assert list(one) == [name], one
    assert stalk.request("/api/workers?workername=nobody@nowhere").status == 404

    assert w.stop(), "celery worker did not exit within 20 s of SIGTERM"
    stopped = time.monotonic()
    wait_status(stalk, name, False, OFFLINE_DEADLINE,
               f"{name} offline (status false) after a graceful stop")
    elapsed = time.monotonic() - stopped
    assert name in stalk.workers_status(), "offline workers stay listed with status false"
    print(f"offline {elapsed:.1f}s after graceful stop")


def test_sigkilled_worker_goes_offline_and_its_task_is_lost(stalk, start_worker, celery_app):
    name = "w2@stalktest"
    # A queue of its own, so the long task can only run on this worker.
    w = start_worker(name, queues="w2q", concurrency=1)
    wait_status(stalk, name, True, 10, f"{name} online")

    done = celery_app.tasks["app.add"].apply_async((1, 1), queue="w2q")
    assert done.get(timeout=15) == 2
    running = celery_app.tasks["app.sleep"].apply_async((60,), queue="w2q")
    wait_for(lambda: running.state == "STARTED", 15, "sleep(60) STARTED in the result backend")
    wait_until(lambda: stalk.task(running.id), lambda i: i["state"] == "STARTED", 10,
               "stalk to show sleep(60) STARTED")
    info = stalk.task(running.id)
    assert info["worker"] == name
    assert info.get("lost") is not True, f"not lost while the worker is alive: {info}"

    w.kill()
    killed = time.monotonic()
    wait_status(stalk, name, False, OFFLINE_DEADLINE,
               f"SIGKILLed {name} to go offline after heartbeat expiry")
    print(f"offline {time.monotonic() - killed:.1f}s after SIGKILL")

    info = wait_until(lambda: stalk.task(running.id), lambda i: i.get("lost") is True, 5,
                      f"task {running.id} of the dead worker to show lost: true")
    assert info["state"] == "STARTED", f"a lost task keeps its last real state: {info}"
    # celery-protocol.md §8: flag, time the worker was declared offline, and a count.
    assert isinstance(info.get("lost_at"), (int, float)) and info["lost_at"] >= info["started"], info
    assert stalk.stats().get("tasks_lost", 0) >= 1, stalk.stats()
    assert stalk.tasks(workername=name)[running.id].get("lost") is True, "/api/tasks must show lost too"
    finished = stalk.task(done.id)
    assert finished["state"] == "SUCCESS"
    assert finished.get("lost", False) is False, f"a finished task is never lost: {finished}"


def test_worker_online_gauge_follows_expiry(stalk, start_worker):
    """celery-protocol.md §8: Flower's flower_worker_online stays 1 for a SIGKILLed worker."""
    name = "w3@stalktest"
    w = start_worker(name, queues="w3q", concurrency=1)
    wait_status(stalk, name, True, 10, f"{name} online")

    def gauge():
        for line in stalk.request("/metrics").text.splitlines():
            if line.startswith("flower_worker_online{") and f'worker="{name}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return None

    wait_until(gauge, lambda v: v == 1.0, 10, f'flower_worker_online{{worker="{name}"}} == 1')
    w.kill()
    wait_until(gauge, lambda v: v == 0.0, OFFLINE_DEADLINE,
               f'flower_worker_online{{worker="{name}"}} == 0 after SIGKILL')
