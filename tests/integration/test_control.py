"""Remote control, inspection and sending tasks through Flower's routes, against real Celery workers
(prefork, -c 2) on a real redis-server: every command must change what the worker reports
afterwards (celery-protocol.md §3 pidbox, §5 task messages).

Workers: the module's w1@stalktest (queue "celery") for most tests; w3@stalktest, started with
--autoscale, for the autoscale test and then shut down through the API (so it runs last).
The SIGSTOPped-worker test uses harmless commands only: a stopped worker still holds its pidbox
subscription and runs whatever was published once it resumes.
"""
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from harness import Stalk, Worker, wait_for, wait_until

W1 = "w1@stalktest"
W3 = "w3@stalktest"
TASK_DEADLINE = 20.0
# Generous for a loaded CI machine (a freshly started worker can take over a second to answer);
# also what bounds the no-reply tests.
INSPECT_TIMEOUT_MS = 2000


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------

def call(stalk, method, path, form=None, body=None, timeout=20):
    """One HTTP request; returns (status, parsed JSON body). `form` is sent url-encoded (as Flower's
    examples do), `body` as JSON text (or raw str, for malformed-input tests)."""
    data, headers = None, {}
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
    elif body is not None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        headers["Content-Type"] = "application/json; charset=utf-8"
    elif method == "POST":
        data = b""
    req = urllib.request.Request(stalk.url(path), data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read() or b""
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{method} {path}: HTTP {status}, body is not JSON: {raw[:300]!r}")
    return status, parsed


def post(stalk, path, expect=200, **kw):
    status, body = call(stalk, "POST", path, **kw)
    assert status == expect, f"POST {path}: expected HTTP {expect}, got {status}: {body}"
    return body


def worker_info(stalk, name, refresh=True):
    q = urllib.parse.urlencode({"workername": name, **({"refresh": 1} if refresh else {})})
    return stalk.get_json(f"/api/workers?{q}")[name]


def queue_names(info):
    return sorted(q["name"] for q in info.get("active_queues", []))


def task_state(stalk, task_id):
    resp = stalk.request(f"/api/task/info/{task_id}")
    return resp.json() if resp.status == 200 else {}


def wait_task(stalk, task_id, states, timeout=TASK_DEADLINE):
    return wait_until(lambda: task_state(stalk, task_id), lambda t: t.get("state") in states, timeout,
                      f"task {task_id} to reach {states} in /api/task/info")


def queue_length(stalk, name):
    body = stalk.get_json("/api/queues/length")
    return {q["name"]: q["messages"] for q in body["active_queues"]}.get(name)


@pytest.fixture(scope="module")
def stalk(stalk_bin, redis_server, module_tmp):
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk",
              extra_args=["--inspect_timeout", str(INSPECT_TIMEOUT_MS)]).start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()
    finally:
        s.stop()


@pytest.fixture(scope="module")
def w1(stalk, worker):
    wait_until(stalk.workers_status, lambda s: s.get(W1) is True, 15, f"{W1} online")
    wait_listening(stalk, W1)
    return worker


def wait_listening(stalk, name):
    """worker-online and "ready." come before a worker subscribes to the pidbox channel, and PUB/SUB
    keeps nothing for late subscribers: wait until it answers a ping."""
    wait_for(lambda: call(stalk, "GET", f"/api/stalk/inspect/ping?workername={name}")[0] == 200, 20,
             f"{name} to answer a ping")


# ------------------------------------------------------------------------------------------------
# Inspection
# ------------------------------------------------------------------------------------------------

def test_refresh_fills_flowers_worker_shape(stalk, w1):
    started = time.monotonic()
    info = worker_info(stalk, W1)
    elapsed = time.monotonic() - started
    print(f"/api/workers?refresh=1 for one worker took {elapsed * 1000:.0f} ms")
    for key in ("stats", "active_queues", "registered", "scheduled", "active", "reserved", "revoked", "conf",
                "timestamp"):
        assert key in info, f"{key} missing from {sorted(info)}"
    # Stalk's event-derived fields stay.
    assert info["hostname"] == W1 and info["status"] is True, info
    assert "app.add" in info["registered"], info["registered"]
    assert queue_names(info) == ["celery"], info["active_queues"]
    assert info["stats"]["pool"]["max-concurrency"] == 2, info["stats"]["pool"]
    assert isinstance(info["active"], list) and isinstance(info["conf"], dict), info
    # All workers at once: stops as soon as every listening worker answered.
    started = time.monotonic()
    every = stalk.get_json("/api/workers?refresh=1")
    print(f"/api/workers?refresh=1 for all workers took {(time.monotonic() - started) * 1000:.0f} ms "
          f"(inspect timeout {INSPECT_TIMEOUT_MS} ms)")
    assert "stats" in every[W1]
    # The inspect route answers with the raw replies.
    assert stalk.get_json(f"/api/stalk/inspect/ping?workername={W1}") == {W1: {"ok": "pong"}}


# ------------------------------------------------------------------------------------------------
# Pool and consumers
# ------------------------------------------------------------------------------------------------

def test_pool_grow_then_shrink_changes_the_pool(stalk, w1):
    def processes():
        return len(worker_info(stalk, W1)["stats"]["pool"]["processes"])

    assert processes() == 2
    assert post(stalk, f"/api/worker/pool/grow/{W1}?n=1") == {"message": f"Growing '{W1}' worker's pool by 1"}
    wait_for(lambda: processes() == 3, 15, "3 pool processes in stats after pool/grow")
    assert post(stalk, f"/api/worker/pool/shrink/{W1}", form={"n": 1}) == \
        {"message": f"Shrinking '{W1}' worker's pool by 1"}
    wait_for(lambda: processes() == 2, 15, "2 pool processes in stats after pool/shrink")


def test_add_and_cancel_consumer(stalk, w1, redis_server):
    queue = "extra_q"
    assert post(stalk, f"/api/worker/queue/add-consumer/{W1}?queue={queue}") == {"message": f"add consumer {queue}"}
    wait_for(lambda: queue in queue_names(worker_info(stalk, W1)), 10, f"{queue} in active_queues")
    # Learned from active_queues: /api/queues/length reports it.
    wait_for(lambda: queue_length(stalk, queue) == 0, 10, f"{queue} listed by /api/queues/length")

    sent = post(stalk, "/api/task/async-apply/app.add", body={"args": [20, 22], "queue": queue})
    done = wait_task(stalk, sent["task-id"], {"SUCCESS"})
    assert done["worker"] == W1 and done["result"] == "42", done

    assert post(stalk, f"/api/worker/queue/cancel-consumer/{W1}", form={"queue": queue}) == \
        {"message": f"no longer consuming from {queue}"}
    wait_for(lambda: queue not in queue_names(worker_info(stalk, W1)), 10, f"{queue} gone from active_queues")

    # A BRPOP issued before the cancel may still name the queue; once the worker took a marker task
    # from "celery", every later BRPOP is without it.
    marker = post(stalk, "/api/task/async-apply/app.add", body={"args": [1, 1]})
    wait_task(stalk, marker["task-id"], {"SUCCESS"})
    stranded = post(stalk, "/api/task/async-apply/app.add", body={"args": [3, 4], "queue": queue})
    wait_for(lambda: redis_server.client().llen(queue) == 1, 10, f"the task to wait in {queue}")
    second = post(stalk, "/api/task/async-apply/app.add", body={"args": [2, 2]})
    wait_task(stalk, second["task-id"], {"SUCCESS"})
    assert redis_server.client().llen(queue) == 1, "the cancelled queue was consumed"
    assert task_state(stalk, stranded["task-id"])["state"] == "PENDING"
    wait_for(lambda: queue_length(stalk, queue) == 1, 10, f"/api/queues/length to count 1 in {queue}")


def test_rate_limit_shows_in_registered_and_time_limit_is_set(stalk, w1):
    body = post(stalk, "/api/task/rate-limit/app.echo", form={"workername": W1, "ratelimit": "10/m"})
    assert body == {"message": "new rate limit set successfully"}
    wait_for(lambda: "app.echo [rate_limit=10/m]" in worker_info(stalk, W1)["registered"], 10,
             "registered to show app.echo's rate limit")
    body = post(stalk, "/api/task/timeout/app.sleep", form={"workername": W1, "soft": 30, "hard": 60})
    assert body == {"message": "time limits set successfully"}


# ------------------------------------------------------------------------------------------------
# Revoke
# ------------------------------------------------------------------------------------------------

def test_revoked_before_start_never_runs(stalk, w1):
    sent = post(stalk, "/api/task/async-apply/app.add", body={"args": [1, 2], "countdown": 4})
    task_id = sent["task-id"]
    wait_task(stalk, task_id, {"RECEIVED"}, 10)  # held by the worker until its eta
    assert post(stalk, f"/api/task/revoke/{task_id}") == {"message": f"Revoked '{task_id}'"}
    info = wait_task(stalk, task_id, {"REVOKED"})
    assert info["started"] is None and info["succeeded"] is None, info
    status, result = call(stalk, "GET", f"/api/task/result/{task_id}")
    assert status == 200 and result["state"] == "REVOKED", result


def test_terminate_a_running_task(stalk, w1):
    sent = post(stalk, "/api/task/async-apply/app.sleep", body={"args": [30]})
    task_id = sent["task-id"]
    wait_task(stalk, task_id, {"STARTED"})
    post(stalk, f"/api/task/revoke/{task_id}", form={"terminate": "true"})
    info = wait_task(stalk, task_id, {"REVOKED"}, 15)
    assert info["succeeded"] is None, info


# ------------------------------------------------------------------------------------------------
# Sending tasks and results
# ------------------------------------------------------------------------------------------------

def test_async_apply_then_result(stalk, w1):
    sent = post(stalk, "/api/task/async-apply/app.add", body={"args": [2, 3]})
    assert set(sent) == {"task-id", "state"} and sent["state"] == "PENDING", sent
    # The task-sent event Stalk publishes shows the task before any worker event.
    shown = wait_until(lambda: task_state(stalk, sent["task-id"]), lambda t: t.get("sent"), 10,
                       "the task's task-sent in /api/task/info")
    assert shown["name"] == "app.add" and shown["args"] == "[2, 3]", shown
    result = wait_until(lambda: call(stalk, "GET", f"/api/task/result/{sent['task-id']}")[1],
                        lambda r: r["state"] == "SUCCESS", TASK_DEADLINE, "the result in the backend")
    assert result == {"task-id": sent["task-id"], "state": "SUCCESS", "result": 5}
    waited = call(stalk, "GET", f"/api/task/result/{sent['task-id']}?timeout=5")[1]
    assert waited["result"] == 5


def test_apply_waits_for_the_result(stalk, w1):
    ok = post(stalk, "/api/task/apply/app.add", body={"args": [4, 5]})
    assert ok["state"] == "SUCCESS" and ok["result"] == 9, ok
    failed = post(stalk, "/api/task/apply/app.fail", body={"args": ["boom"]})
    assert failed["state"] == "FAILURE" and failed["result"] == "ValueError('boom')", failed
    assert "ValueError" in failed["traceback"], failed
    echoed = post(stalk, "/api/task/send-task/app.echo", body={"kwargs": {"value": "hi"}})
    result = call(stalk, "GET", f"/api/task/result/{echoed['task-id']}?timeout={TASK_DEADLINE}")[1]
    assert result["result"] == "hi", result


def test_abort_marks_the_result_aborted(stalk, w1):
    task_id = str(uuid.uuid4())
    assert post(stalk, f"/api/task/abort/{task_id}") == {"message": f"Aborted '{task_id}'"}
    assert call(stalk, "GET", f"/api/task/result/{task_id}")[1] == {"task-id": task_id, "state": "ABORTED"}


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

def test_bad_input_gets_clear_errors(stalk, w1):
    status, body = call(stalk, "POST", "/api/worker/pool/grow/nobody@nowhere")
    assert (status, body) == (404, {"error": "Unknown worker 'nobody@nowhere'"})
    status, body = call(stalk, "POST", "/api/task/async-apply/app.add", body='{"args": [1, 2')
    assert status == 400 and "malformed JSON" in body["error"], body
    status, body = call(stalk, "POST", "/api/task/async-apply/app.add", body={"args": "1, 2"})
    assert (status, body) == (400, {"error": "args must be an array"})
    status, body = call(stalk, "POST", "/api/task/async-apply/app.no_such_task", body={"args": []})
    assert (status, body) == (404, {"error": "Unknown task 'app.no_such_task'"})
    status, body = call(stalk, "POST", "/api/task/apply/app.no_such_task", body={})
    assert status == 404, body
    status, body = call(stalk, "POST", f"/api/worker/pool/grow/{W1}?n=many")
    assert status == 400 and "n" in body["error"], body
    status, body = call(stalk, "POST", "/api/task/rate-limit/app.echo", form={"ratelimit": "1/s"})
    assert (status, body) == (400, {"error": "Missing argument workername"})
    status, body = call(stalk, "POST", "/api/task/async-apply/app.add", body={"countdown": "soon"})
    assert status == 400, body
    assert stalk.request(f"/api/worker/shutdown/{W1}").status == 405  # GET on a POST route


def test_a_worker_that_never_replies_does_not_hang(stalk, w1):
    os.kill(w1.proc.pid, signal.SIGSTOP)  # main process: holds its subscription, answers nothing
    try:
        started = time.monotonic()
        status, body = call(stalk, "POST", f"/api/worker/pool/autoscale/{W1}?min=1&max=2")
        elapsed = time.monotonic() - started
        assert status == 504 and "no reply" in body["error"], body
        started = time.monotonic()
        assert W1 in stalk.get_json("/api/workers?refresh=1")  # the cached answers stay
        refresh_elapsed = time.monotonic() - started
    finally:
        os.kill(w1.proc.pid, signal.SIGCONT)
    print(f"unanswered command: {elapsed:.2f} s; refresh with a silent worker: {refresh_elapsed:.2f} s "
          f"(inspect timeout {INSPECT_TIMEOUT_MS} ms)")
    timeout = INSPECT_TIMEOUT_MS / 1000
    assert timeout <= elapsed < timeout + 3 and refresh_elapsed < timeout + 5, (elapsed, refresh_elapsed)


def test_a_second_waiting_call_is_told_to_retry(stalk, w1):
    """Calls that wait on workers are limited (--http_threads - 1, so one thread always serves the
    rest): one more is refused at once with 503 and Retry-After, which the dashboard honours."""
    os.kill(w1.proc.pid, signal.SIGSTOP)  # a call now waits the whole inspect timeout
    path = f"/api/stalk/inspect/ping?workername={W1}"
    answers = []
    try:
        first = threading.Thread(target=lambda: answers.append(stalk.request(path, timeout=20)))
        first.start()
        # Whichever of the two reaches the gate second is refused (normally this loop's first call).
        while first.is_alive() and not any(a.status == 503 for a in answers):
            answers.append(stalk.request(path, timeout=20))
        first.join()
    finally:
        os.kill(w1.proc.pid, signal.SIGCONT)
    statuses = [a.status for a in answers]
    refused = [a for a in answers if a.status == 503]
    assert 504 in statuses and refused, statuses
    headers = {k.lower(): v for k, v in refused[0].headers.items()}
    assert headers.get("retry-after") == "1", refused[0].headers
    assert "retry" in refused[0].json()["error"], refused[0]


def test_reply_queues_are_cleaned_up(stalk, w1, redis_server):
    # The resumed worker answers the commands it missed; Stalk unbound its reply queues already, so
    # kombu drops those answers, and a reply list a straggler recreated expires: no binding and no
    # reply list is left behind.
    wait_for(lambda: call(stalk, "GET", f"/api/stalk/inspect/ping?workername={W1}")[0] == 200, 15,
             f"{W1} to answer again after SIGCONT")
    r = redis_server.client()
    assert r.smembers("_kombu.binding.reply.celery.pidbox") == set()
    wait_for(lambda: r.keys("*reply.celery.pidbox*") == [], 3 * INSPECT_TIMEOUT_MS / 1000 + 5,
             "reply lists to be gone")


# ------------------------------------------------------------------------------------------------
# Autoscale, then shutdown (last: the worker goes away)
# ------------------------------------------------------------------------------------------------

def test_autoscale_then_shutdown(stalk, redis_server, module_tmp):
    w3 = Worker(W3, redis_server.url, module_tmp / "w3", queues="w3q", extra=("--autoscale=3,2",)).start()
    try:
        w3.wait_ready()
        wait_until(stalk.workers_status, lambda s: s.get(W3) is True, 15, f"{W3} online")
        wait_listening(stalk, W3)
        # Lowering min and raising max changes no process count, so the worker answers at once.
        body = post(stalk, f"/api/worker/pool/autoscale/{W3}", form={"min": 1, "max": 4})
        assert body == {"message": f"Autoscaling '{W3}' worker (min=1, max=4)"}
        scaler = worker_info(stalk, W3)["stats"]["autoscaler"]
        assert (scaler["min"], scaler["max"]) == (1, 4), scaler
        status, body = call(stalk, "POST", f"/api/worker/pool/grow/{W3}")
        assert status == 403 and "autoscale" in body["error"], body

        assert post(stalk, f"/api/worker/shutdown/{W3}") == {"message": "Shutting down!"}
        wait_until(stalk.workers_status, lambda s: s.get(W3) is False, 15, f"{W3} offline after shutdown")
        assert w3.proc.wait(20), "the worker process did not exit after shutdown"
    finally:
        w3.stop()
