"""Alerting, the rest of issue 9, end to end with real peers: notification grouping (two Celery
workers killed at once -> one "worker offline" notification naming both, then the resolves), the
result_backend_errors rule against a real redis-server used as the result backend that is stopped
and started again, and silences that survive a restart of Stalk on the same SQLite history (still
listed, still muting). Receivers are a recording HTTP server on 127.0.0.1 (test_alerts.Recorder).
"""
import json
import os
import urllib.request

import pytest

from harness import RedisServer, Stalk, Worker, free_port, wait_for, wait_until
from test_alerts import Recorder

RULES = """
evaluation_interval: 250ms
channels:
  slack: {type: slack, url_env: G_SLACK_URL}
  hook: {type: webhook, url_env: G_HOOK_URL}
rules:
  - name: WorkerOffline
    kind: worker_offline
    severity: critical
    channels: [slack, hook]
    group_wait: 5s
    group_interval: 2s
    params: {worker: "grp*@*"}
  - {name: ResultBackend, kind: result_backend_errors, channels: [hook]}
  - {name: Held, kind: queue_length, channels: [hook], params: {queue: held, threshold: 0}}
  - {name: Marker, kind: queue_length, channels: [hook], params: {queue: held, threshold: 0}}
"""


@pytest.fixture(scope="module")
def receiver():
    r = Recorder()
    yield r
    r.close()


@pytest.fixture(scope="module")
def backend_redis(module_tmp):
    server = RedisServer(free_port(), module_tmp / "backend-redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def setup(stalk_bin, redis_server, backend_redis, module_tmp, receiver):
    rules = module_tmp / "alerts.yml"
    rules.write_text(RULES)
    db = module_tmp / "history.db"
    env = {"G_SLACK_URL": receiver.url("/slack"), "G_HOOK_URL": receiver.url("/hook")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    port = free_port()

    def make():
        return Stalk(stalk_bin, redis_server.url, module_tmp / "stalk", port=port,
                     extra_args=["--alerts_config", str(rules), "--db", str(db), "--result_backend",
                                 backend_redis.url, "--queues", "held", "--queue_poll_interval", "0.5"])
    state = {"stalk": make().start()}
    try:
        state["stalk"].wait_ready(redis_server)
        state["make"] = make
        yield state
        state["stalk"].check_alive()
    finally:
        state["stalk"].stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def hook_alerts(receiver, rule):
    """Every webhook payload holding an alert of `rule`, as (payload status, [alerts of the rule])."""
    out = []
    for p in receiver.json_posts("/hook"):
        mine = [a for a in p["alerts"] if a["rule"] == rule]
        if mine:
            out.append((p["status"], mine))
    return out


def test_two_workers_killed_at_once_give_one_grouped_notification(setup, redis_server, module_tmp, receiver):
    stalk = setup["stalk"]
    names = ["grp1@stalktest", "grp2@stalktest"]
    workers = [Worker(n, redis_server.url, module_tmp / n.split("@")[0], concurrency=1).start() for n in names]
    try:
        for w in workers:
            w.wait_ready()
        wait_until(lambda: stalk.get_json("/api/workers?status=1"), lambda ws: all(ws.get(n) for n in names), 30,
                   "both workers online in stalk")
        for w in workers:
            w.kill()  # SIGKILL: missed heartbeats only
        wait_until(lambda: stalk.get_json("/api/alerts")["alerts"],
                   lambda al: sorted(a["labels"]["worker"] for a in al
                                     if a["rule"] == "WorkerOffline" and a["state"] == "firing") == names,
                   30, "both WorkerOffline alerts firing")
        wait_for(lambda: receiver.posts("/slack"), 15, "the grouped slack message")
        slack = receiver.json_posts("/slack")
        assert len(slack) == 1, slack  # one message for both workers
        assert "[FIRING:2] WorkerOffline" in slack[0]["text"], slack[0]["text"]
        assert all(n in slack[0]["text"] for n in names)
        # Each channel delivers on its own thread: the webhook's copy may land a moment later.
        hooks = wait_until(lambda: hook_alerts(receiver, "WorkerOffline"), lambda h: h, 15, "the grouped webhook")
        assert len(hooks) == 1, hooks
        status, alerts = hooks[0]
        assert status == "firing" and sorted(a["labels"]["worker"] for a in alerts) == names
        assert receiver.json_posts("/hook")[0]["groupLabels"] == {"alertname": "WorkerOffline"}

        for w in workers:
            w.start()  # same hostnames again: heartbeats resume
        for w in workers:
            w.wait_ready()
        # Resolves go out with the group (at most every group_interval); in the end both are resolved.
        def resolved_workers():
            return sorted({a["labels"]["worker"] for _, alerts in hook_alerts(receiver, "WorkerOffline")
                           for a in alerts if a["status"] == "resolved"})
        wait_until(resolved_workers, lambda r: r == names, 40, "both resolves on the webhook")
        hooks = hook_alerts(receiver, "WorkerOffline")
        assert hooks[-1][0] == "resolved"
        assert len(hooks) <= 3, hooks  # the firing one, then at most one per resolve
        wait_until(lambda: receiver.json_posts("/slack"), lambda p: "[RESOLVED" in p[-1]["text"], 15,
                   "the last slack message is the resolve")
    finally:
        for w in workers:
            w.stop()


def test_result_backend_errors_fire_while_the_backend_is_down(setup, backend_redis, receiver):
    stalk = setup["stalk"]
    wait_until(lambda: stalk.request("/metrics").text, lambda m: "stalk_result_backend_up 1" in m, 15,
               "the result backend probed up")
    backend_redis.stop()
    try:
        wait_for(lambda: [h for h in hook_alerts(receiver, "ResultBackend") if h[0] == "firing"], 30,
                 "ResultBackend firing on the webhook")
        fired = hook_alerts(receiver, "ResultBackend")[0][1][0]
        assert "result backend is failing" in fired["summary"], fired
        metrics = stalk.request("/metrics").text
        assert "stalk_result_backend_up 0" in metrics
        errors = [l for l in metrics.splitlines() if l.startswith("stalk_result_backend_errors_total ")]
        assert errors and float(errors[0].split()[1]) >= 1, errors
        health = stalk.request("/healthcheck")
        assert health.status == 200 and "result backend failing" in health.text, health
    finally:
        backend_redis.start()
    wait_until(lambda: hook_alerts(receiver, "ResultBackend"), lambda h: h[-1][0] == "resolved", 30,
               "ResultBackend resolved once the backend is back")
    assert stalk.request("/healthcheck").text == "OK"


def post_json(stalk, path, body):
    req = urllib.request.Request(stalk.url(path), data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def test_a_silence_survives_a_restart_and_still_mutes(setup, redis_server, receiver):
    stalk = setup["stalk"]
    status, body = post_json(stalk, "/api/alerts/silences",
                             {"matchers": {"alertname": "Held"}, "duration": "1h", "comment": "kept"})
    assert status == 201
    sid = body["id"]
    stalk.stop()  # SIGTERM: the store writer writes what was submitted before it exits
    setup["stalk"] = stalk = setup["make"]().start()
    stalk.wait_ready(redis_server)
    listed = stalk.get_json("/api/alerts/silences")["silences"]
    assert [(s["id"], s["state"], s["comment"]) for s in listed] == [(sid, "active", "kept")]

    redis_server.client().lpush("held", *[b"x"] * 3)  # both rules fire in the same evaluation
    try:
        wait_for(lambda: hook_alerts(receiver, "Marker"), 20, "the unsilenced Marker alert delivered")
        alerts = stalk.get_json("/api/alerts")["alerts"]
        held = [a for a in alerts if a["rule"] == "Held"]
        assert held and held[0]["state"] == "firing" and held[0]["silenced_by"] == sid, held
        assert not hook_alerts(receiver, "Held"), "the silenced alert was notified"
    finally:
        redis_server.client().delete("held")
