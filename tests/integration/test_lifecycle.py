"""Task lifecycle through a real Celery worker: what stalk shows must match Celery's result backend.

One batch is sent at module start (fixture `batch`): a success, a failure, a retry-then-success,
a task revoked before it starts (countdown + revoke), a task terminated while running, and an
acks_late task that raises Reject(requeue=False). Each test then checks one aspect of stalk's view:
final state vs AsyncResult, the repr strings Celery sends, runtime, retries, worker, the
/api/tasks filters, /api/task/types and /metrics.
"""
import time
import uuid

import pytest

from harness import wait_for, wait_until

WORKER = "w1@stalktest"
FINAL_STATES = {"SUCCESS", "FAILURE", "REVOKED", "REJECTED"}
# Flower 2.x Task.as_dict() keys; stalk must return at least these for every task.
TASK_FIELDS = {
    "uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded", "failed",
    "retried", "revoked", "args", "kwargs", "eta", "expires", "retries", "worker", "result",
    "exception", "timestamp", "runtime", "traceback", "exchange", "routing_key", "clock", "client",
    "root_id", "parent_id", "children",
}
EXPECTED = {
    "add": {"name": "app.add", "state": "SUCCESS", "args": "(2, 3)", "kwargs": "{}", "result": "5"},
    "fail": {"name": "app.fail", "state": "FAILURE", "args": "('boom',)",
             "exception": "ValueError('boom')"},
    "retry": {"name": "app.retry_once", "state": "SUCCESS", "args": "(7,)", "result": "7",
              "retries": 1},
    "revoke_eta": {"name": "app.sleep", "state": "REVOKED", "args": "(30,)"},
    "revoke_running": {"name": "app.sleep", "state": "REVOKED", "args": "(30,)"},
    # Celery's backend keeps STARTED for a rejected task; stalk must say REJECTED (not STARTED).
    "reject": {"name": "app.reject", "state": "REJECTED", "args": "()"},
}


@pytest.fixture(scope="module")
def batch(stalk, worker, celery_app):
    """Send the whole batch, wait until the result backend has every outcome, return the ids."""
    t = celery_app.tasks
    t0 = time.time()
    ids = {
        "add": t["app.add"].delay(2, 3).id,
        "fail": t["app.fail"].delay("boom").id,
        "retry": t["app.retry_once"].delay(7).id,
        "reject": t["app.reject"].delay().id,
    }
    # Revoked before it starts: held until its ETA (or dropped on receipt) - never runs.
    held = t["app.sleep"].apply_async((30,), countdown=2)
    celery_app.control.revoke(held.id)
    ids["revoke_eta"] = held.id
    # Terminated while running (SIGKILL to the pool child).
    running = t["app.sleep"].delay(30)
    ids["revoke_running"] = running.id
    wait_for(lambda: running.state == "STARTED", 15, "sleep(30) to be STARTED in the result backend")
    celery_app.control.revoke(running.id, terminate=True, signal="SIGKILL")

    backend_final = {"add": "SUCCESS", "fail": "FAILURE", "retry": "SUCCESS",
                     "revoke_eta": "REVOKED", "revoke_running": "REVOKED"}
    for key, state in backend_final.items():
        res = celery_app.AsyncResult(ids[key])
        wait_for(lambda: res.state == state, 15, f"result backend to say {state} for {key}")
    return {"ids": ids, "t0": t0}


def final_info(stalk, task_id, timeout=15):
    """/api/task/info once stalk shows a final state (SUCCESS/FAILURE/REVOKED/REJECTED)."""
    return wait_until(lambda: stalk.task(task_id), lambda i: i.get("state") in FINAL_STATES, timeout,
                      f"stalk to show a final state for task {task_id}")


def all_final(stalk, batch):
    for tid in batch["ids"].values():
        final_info(stalk, tid)


@pytest.mark.parametrize("key", list(EXPECTED))
def test_final_state_matches_result_backend(stalk, celery_app, batch, key):
    tid = batch["ids"][key]
    want = EXPECTED[key]["state"]
    try:
        info = final_info(stalk, tid)
    except AssertionError:
        info = stalk.task(tid)
    backend = celery_app.AsyncResult(tid)
    if key == "reject":
        # Celery stores no outcome for a rejected task: the backend keeps STARTED (task_track_started).
        assert backend.state in ("PENDING", "STARTED")
    else:
        assert backend.state == want
    assert info["state"] == want, (
        f"{key}: GET /api/task/info/{tid} state={info['state']!r}, expected {want!r} "
        f"(result backend: {backend.state}); info={info}")


@pytest.mark.parametrize("key", list(EXPECTED))
def test_task_fields_match_celery(stalk, batch, key):
    tid = batch["ids"][key]
    info = final_info(stalk, tid)
    for field, want in EXPECTED[key].items():
        assert info.get(field) == want, f"{key}: field {field!r} is {info.get(field)!r}, expected {want!r}"
    assert info["uuid"] == tid
    assert info.get("task-id") == tid, f"/api/task/info lacks 'task-id' == {tid}: {info}"
    assert info["worker"] == WORKER
    missing = TASK_FIELDS - set(info)
    assert not missing, f"/api/task/info/{tid} lacks fields {sorted(missing)}"


@pytest.mark.parametrize("key", list(EXPECTED))
def test_task_list_entry_equals_task_info(stalk, batch, key):
    tid = batch["ids"][key]
    info = final_info(stalk, tid)
    listed = stalk.tasks()
    assert tid in listed, f"/api/tasks lacks {key} task {tid}"
    entry = listed[tid]
    missing = TASK_FIELDS - set(entry)
    assert not missing, f"/api/tasks entry for {tid} lacks fields {sorted(missing)}"
    for field in TASK_FIELDS:
        assert entry[field] == info[field], (
            f"{key}: /api/tasks[{field!r}]={entry[field]!r} but /api/task/info[{field!r}]={info[field]!r}")


def test_success_details(stalk, celery_app, batch):
    tid = batch["ids"]["add"]
    info = final_info(stalk, tid)
    assert celery_app.AsyncResult(tid).result == 5
    assert info["result"] == repr(5)
    assert isinstance(info["runtime"], (int, float)) and info["runtime"] > 0, info
    assert info["exception"] is None and info["traceback"] is None
    assert info["retries"] == 0
    for stamp in ("sent", "received", "started", "succeeded", "timestamp"):
        assert isinstance(info[stamp], (int, float)), f"{stamp} is {info[stamp]!r}"
    assert info["received"] <= info["started"] <= info["succeeded"], info
    assert abs(info["succeeded"] - time.time()) < 300, "timestamps are not Unix epoch seconds"
    assert info["client"], "task-sent sets `client` to the sender's hostname"
    assert info["routing_key"] == "celery", info


def test_failure_details(stalk, celery_app, batch):
    tid = batch["ids"]["fail"]
    info = final_info(stalk, tid)
    backend = celery_app.AsyncResult(tid)
    assert info["exception"] == repr(backend.result) == "ValueError('boom')"
    assert "ValueError: boom" in (info["traceback"] or ""), info["traceback"]
    assert isinstance(info["failed"], (int, float))
    assert info["result"] is None


def test_retry_details(stalk, celery_app, batch):
    tid = batch["ids"]["retry"]
    info = final_info(stalk, tid)
    assert celery_app.AsyncResult(tid).result == 7
    assert info["retries"] == 1
    assert isinstance(info["retried"], (int, float)), "task-retried time must be kept"
    assert info["runtime"] > 0


def test_revoked_details(stalk, batch):
    held = final_info(stalk, batch["ids"]["revoke_eta"])
    assert held["started"] is None, f"a task revoked before its ETA never started: {held}"
    assert held["eta"], f"the countdown task's eta is kept: {held}"
    assert isinstance(held["revoked"], (int, float))
    killed = final_info(stalk, batch["ids"]["revoke_running"])
    assert isinstance(killed["started"], (int, float)) and isinstance(killed["revoked"], (int, float))
    assert killed["revoked"] >= killed["started"]


def test_rejected_is_not_started(stalk, batch):
    tid = batch["ids"]["reject"]
    info = wait_until(lambda: stalk.task(tid), lambda i: i["state"] in FINAL_STATES, 15,
                      "the rejected task to leave STARTED")
    assert info["state"] == "REJECTED"
    assert isinstance(info["rejected"], (int, float)), info
    assert isinstance(info["started"], (int, float)), "it did start before it was rejected"
    assert stalk.tasks(state="STARTED").get(tid) is None
    assert tid in stalk.tasks(state="REJECTED")


def test_unknown_task_is_404(stalk):
    resp = stalk.request(f"/api/task/info/{uuid.uuid4()}")
    assert resp.status == 404, resp


def test_task_types(stalk, batch):
    all_final(stalk, batch)
    types = stalk.get_json("/api/task/types")
    assert set(types) == {"task-types"}, types
    assert isinstance(types["task-types"], list)
    assert {"app.add", "app.fail", "app.retry_once", "app.sleep", "app.reject"} <= set(types["task-types"])
    assert len(types["task-types"]) == len(set(types["task-types"])), "duplicates in task types"


@pytest.mark.parametrize("state,keys", [
    ("SUCCESS", {"add", "retry"}),
    ("FAILURE", {"fail"}),
    ("REVOKED", {"revoke_eta", "revoke_running"}),
    ("REJECTED", {"reject"}),
])
def test_filter_state(stalk, batch, state, keys):
    all_final(stalk, batch)
    got = stalk.tasks(state=state)
    want = {batch["ids"][k] for k in keys}
    assert want <= set(got), f"/api/tasks?state={state} lacks {want - set(got)}"
    wrong = {tid: e["state"] for tid, e in got.items() if e["state"] != state}
    assert not wrong, f"/api/tasks?state={state} returned tasks in other states: {wrong}"
    others = set(batch["ids"].values()) - want
    assert not (others & set(got)), f"/api/tasks?state={state} returned {others & set(got)}"


def test_filter_taskname(stalk, batch):
    all_final(stalk, batch)
    got = stalk.tasks(taskname="app.sleep")
    assert set(got) == {batch["ids"]["revoke_eta"], batch["ids"]["revoke_running"]}, got.keys()
    assert stalk.tasks(taskname="app.no_such_task") == {}


def test_filter_workername(stalk, batch):
    all_final(stalk, batch)
    got = stalk.tasks(workername=WORKER)
    assert set(batch["ids"].values()) <= set(got)
    assert all(e["worker"] in (WORKER, None) for e in got.values())
    other = stalk.tasks(workername="nobody@nowhere")
    assert not (set(batch["ids"].values()) & set(other)), f"workername filter leaks: {list(other)}"


def test_limit_and_offset(stalk, batch):
    all_final(stalk, batch)
    full = list(stalk.tasks(sort_by="-received"))
    assert len(full) >= len(batch["ids"])
    assert list(stalk.tasks(sort_by="-received", limit=2, offset=1)) == full[1:3]
    assert list(stalk.tasks(sort_by="-received", limit=3)) == full[:3]
    assert list(stalk.tasks(sort_by="-received", offset=len(full))) == []
    assert len(stalk.tasks(limit=1)) == 1


@pytest.mark.parametrize("sort_by,descending", [("-received", True), ("received", False)])
def test_sort_by_received(stalk, batch, sort_by, descending):
    all_final(stalk, batch)
    got = stalk.tasks(sort_by=sort_by)
    stamps = [e["received"] for e in got.values() if e["received"] is not None]
    assert len(stamps) >= 5
    assert stamps == sorted(stamps, reverse=descending), f"/api/tasks?sort_by={sort_by}: {stamps}"


def test_received_range(stalk, batch):
    all_final(stalk, batch)
    fmt = "%Y-%m-%d %H:%M"  # Flower's format, local time, minute precision
    before = time.strftime(fmt, time.localtime(batch["t0"] - 60))
    long_before = time.strftime(fmt, time.localtime(batch["t0"] - 180))
    received = {tid for tid, e in stalk.tasks().items()
                if tid in batch["ids"].values() and e["received"] is not None}
    assert len(received) >= 5
    got = stalk.tasks(received_start=before)
    assert received <= set(got), f"received_start={before!r} dropped {received - set(got)}"
    got = stalk.tasks(received_end=long_before)
    assert not (received & set(got)), f"received_end={long_before!r} kept {received & set(got)}"


def test_search(stalk, batch):
    all_final(stalk, batch)
    tid = batch["ids"]["add"]
    assert set(stalk.tasks(search=tid)) == {tid}
    got = stalk.tasks(search="boom")  # matches the args of fail('boom')
    assert batch["ids"]["fail"] in got and tid not in got, list(got)


def test_metrics_exposition(stalk, batch):
    all_final(stalk, batch)
    resp = stalk.request("/metrics")
    assert resp.status == 200, resp
    assert resp.headers.get("Content-Type", "").startswith("text/plain"), resp.headers
    assert "# TYPE" in resp.text
    lines = [line for line in resp.text.splitlines()
             if line.startswith("flower_events_total{") and 'task="app.add"' in line
             and 'type="task-succeeded"' in line]
    assert lines, "no flower_events_total{task=\"app.add\",type=\"task-succeeded\",...} sample"
