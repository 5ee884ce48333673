"""Alerting end to end: real Celery workers cause the conditions, stalk evaluates its rules and
delivers to local receivers that record what arrives — a Slack-like, PagerDuty-like, webhook and
Sentry-like HTTP receiver (one recording http.server on 127.0.0.1), a real SMTP sink (aiosmtpd), a
real prometheus-alertmanager — plus `promtool check rules` on the exported rules, and a receiver that
hangs does not hold up ingestion.
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import Proc, Stalk, Worker, free_port, wait_for, wait_until

HOOK_SECRET = "stalk_dev_your_webhook_secret_here"


class Recorder:
    """An HTTP receiver on 127.0.0.1 that records every POST. Paths under /hang block until close();
    paths under /fail answer 500; everything else 200."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with rec.lock:
                    rec.requests.append({"path": self.path, "body": body, "at": time.time(),
                                         "headers": {k.lower(): v for k, v in self.headers.items()}})
                if self.path.startswith("/hang"):
                    rec.release.wait(60)
                status = 500 if self.path.startswith("/fail") else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def posts(self, prefix):
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]

    def json_posts(self, prefix):
        return [json.loads(r["body"]) for r in self.posts(prefix)]

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


RULES = """
evaluation_interval: 250ms
channels:
  slack: {type: slack, url_env: T_SLACK_URL}
  pd: {type: pagerduty, routing_key_env: T_PD_KEY, url_env: T_PD_URL}
  hook: {type: webhook, url_env: T_HOOK_URL, secret_env: T_HOOK_SECRET}
  am: {type: alertmanager, url_env: T_AM_URL}
  mail: {type: email, url_env: T_SMTP_URL, from: stalk@example.test, to: [ops@example.test]}
  slow: {type: webhook, url_env: T_HANG_URL, timeout: 3s, max_retries: 1}
  broken: {type: webhook, url_env: T_FAIL_URL, max_retries: 1}
rules:
  - name: WorkerOffline
    kind: worker_offline
    severity: critical
    labels: {team: infra}
    annotations: {summary: "Worker {{ $labels.worker }} is offline"}
    channels: [slack, pd, hook, am, mail]
    params: {worker: "victim@*"}
  - name: Backlog
    kind: queue_length
    for: 1s
    channels: [hook, slow, broken]
    params: {queue: backlog, threshold: 3}
  - name: Failures
    kind: task_failure_count
    channels: []
    params: {task: app.fail, window: 5m, threshold: 0}
  - {name: SlowStart, kind: queue_wait, channels: [], params: {threshold: 60, percentile: 95}}
  - {name: SlowTasks, kind: task_runtime, channels: [], params: {sla: 60s}}
  - {name: Nightly, kind: dead_man, channels: [], params: {task: app.nightly, max_age: 1d}}
  - {name: Lag, kind: ingest_lag, channels: [], for: 1m, params: {threshold: 30}}
  - {name: Broker, kind: broker_unreachable, channels: [], for: 1m}
  - {name: Store, kind: store_errors, channels: [], for: 1m}
  - {name: NoConsumer, kind: no_consumer, channels: [], params: {queue: backlog}}
  - {name: CeleryConsumed, kind: no_consumer, channels: [], for: 1m, params: {queue: celery}}
  - {name: FailRate, kind: task_failure_rate, channels: [], params: {window: 10m, threshold: 0.5, min_count: 10}}
"""


@pytest.fixture(scope="module")
def receiver():
    r = Recorder()
    yield r
    r.close()


@pytest.fixture(scope="module")
def smtp_sink(module_tmp):
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = Proc("aiosmtpd", ["/usr/bin/python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"],
             module_tmp / "smtp.log", env=env).start()
    import socket

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(listening, 15, "aiosmtpd listening")
    p.port = port
    yield p
    p.stop()


@pytest.fixture(scope="module")
def alertmanager(module_tmp):
    port = free_port()
    d = module_tmp / "am"
    d.mkdir(parents=True, exist_ok=True)
    (d / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    p = Proc("alertmanager", ["/usr/bin/prometheus-alertmanager", f"--config.file={d / 'am.yml'}",
                              f"--storage.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                              "--cluster.listen-address="], d / "am.log").start()
    import urllib.request

    def ready():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
            return r.status == 200
    wait_for(ready, 30, "alertmanager ready")
    p.port = port
    yield p
    p.stop()


@pytest.fixture(scope="module")
def rules_file(module_tmp):
    path = module_tmp / "alerts.yml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
def stalk(stalk_bin, redis_server, module_tmp, receiver, smtp_sink, alertmanager, rules_file):
    env = {
        "T_SLACK_URL": receiver.url("/slack"), "T_PD_URL": receiver.url("/pd"), "T_PD_KEY": "pd-routing-key",
        "T_HOOK_URL": receiver.url("/hook"), "T_HOOK_SECRET": HOOK_SECRET,
        "T_AM_URL": f"http://127.0.0.1:{alertmanager.port}", "T_SMTP_URL": f"smtp://127.0.0.1:{smtp_sink.port}",
        "T_HANG_URL": receiver.url("/hang"), "T_FAIL_URL": receiver.url("/fail"),
        "SENTRY_DSN": f"http://testkey@127.0.0.1:{receiver.port}/5", "SENTRY_ENVIRONMENT": "itest",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk",
                  extra_args=["--alerts_config", str(rules_file), "--queues", "backlog",
                              "--queue_poll_interval", "0.5", "--db", "none"])
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    s.start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()
    finally:
        s.stop()


def by_rule(posts, rule):
    return [p for p in posts if p.get("alerts", [{}])[0].get("rule") == rule]


def test_worker_offline_fires_once_then_resolves(stalk, redis_server, module_tmp, receiver, smtp_sink,
                                                 alertmanager):
    victim = Worker("victim@stalktest", redis_server.url, module_tmp / "victim").start()
    try:
        victim.wait_ready()
        wait_until(lambda: stalk.get_json("/api/workers?status=1"), lambda w: w.get("victim@stalktest"), 20,
                   "victim online in stalk")
        victim.kill()  # SIGKILL: no worker-offline event, only missing heartbeats
        wait_for(lambda: receiver.posts("/slack"), 20, "slack notified of the offline worker")
        slack = receiver.json_posts("/slack")
        assert "[FIRING] WorkerOffline" in slack[0]["text"], slack
        assert "Worker victim@stalktest is offline" in slack[0]["text"]
        pd = receiver.json_posts("/pd")
        wait_for(lambda: receiver.json_posts("/pd"), 10, "pagerduty trigger")
        pd = receiver.json_posts("/pd")
        assert pd[0]["event_action"] == "trigger" and pd[0]["routing_key"] == "pd-routing-key"
        dedup = pd[0]["dedup_key"]

        # The real Alertmanager holds the alert with Stalk's labels.
        import urllib.request

        def am_alerts():
            with urllib.request.urlopen(f"http://127.0.0.1:{alertmanager.port}/api/v2/alerts", timeout=5) as r:
                return json.loads(r.read())
        got = wait_until(am_alerts, lambda a: [x for x in a if x["labels"].get("alertname") == "WorkerOffline"],
                         15, "alertmanager received WorkerOffline")
        labels = [x for x in got if x["labels"].get("alertname") == "WorkerOffline"][0]["labels"]
        assert labels["worker"] == "victim@stalktest" and labels["severity"] == "critical" and labels["team"] == "infra"

        # The email went through the real SMTP sink.
        wait_for(lambda: "Subject: [FIRING] WorkerOffline" in smtp_sink.log.read_text(errors="replace"), 15,
                 "email in the SMTP sink")

        # Webhook: signed over "<timestamp>.<body>".
        wait_for(lambda: by_rule(receiver.json_posts("/hook"), "WorkerOffline"), 10, "webhook")
        hook = [p for p in receiver.posts("/hook") if b"WorkerOffline" in p["body"]][0]
        mac = hmac.new(HOOK_SECRET.encode(), hook["headers"]["x-stalk-timestamp"].encode() + b"." + hook["body"],
                       hashlib.sha256).hexdigest()
        assert hook["headers"]["x-stalk-signature"] == "sha256=" + mac

        alerts = stalk.get_json("/api/alerts")["alerts"]
        assert [a["state"] for a in alerts if a["rule"] == "WorkerOffline"] == ["firing"]

        victim.start()  # same hostname again: heartbeats resume
        wait_for(lambda: len(receiver.posts("/slack")) >= 2, 30, "slack notified of the resolve")
        wait_for(lambda: len(receiver.json_posts("/pd")) >= 2, 10, "pagerduty resolve")
        wait_until(lambda: stalk.get_json("/api/alerts")["alerts"],
                   lambda al: [a["state"] for a in al if a["rule"] == "WorkerOffline"] == ["resolved"], 10,
                   "alert listed as resolved")
        wait_for(lambda: len(by_rule(receiver.json_posts("/hook"), "WorkerOffline")) >= 2, 10, "webhook resolve")
        wait_for(lambda: "Subject: [RESOLVED] WorkerOffline" in smtp_sink.log.read_text(errors="replace"), 15,
                 "resolve email")

        # Exactly one firing and one resolved per channel, however many evaluations ran meanwhile.
        slack = receiver.json_posts("/slack")
        assert [("[FIRING]" in p["text"], "[RESOLVED]" in p["text"]) for p in slack] == [(True, False), (False, True)]
        pd = receiver.json_posts("/pd")
        assert [p["event_action"] for p in pd] == ["trigger", "resolve"]
        assert pd[1]["dedup_key"] == dedup
        hooks = by_rule(receiver.json_posts("/hook"), "WorkerOffline")
        assert [h["status"] for h in hooks] == ["firing", "resolved"]
        log = smtp_sink.log.read_text(errors="replace")
        assert log.count("Subject: [FIRING] WorkerOffline") == 1
        assert log.count("Subject: [RESOLVED] WorkerOffline") == 1
    finally:
        victim.stop()  # a warm shutdown sends worker-offline: the alert fires again (later tests allow it)


def test_failed_task_becomes_sentry_event(stalk, worker, celery_app, receiver):
    result = celery_app.send_task("app.fail", args=["sentry-boom"])
    wait_for(lambda: receiver.posts("/api/5/envelope/"), 30, "a Sentry envelope")
    post = receiver.posts("/api/5/envelope/")[0]
    assert "sentry_key=testkey" in post["headers"]["x-sentry-auth"]
    assert post["headers"]["content-type"] == "application/x-sentry-envelope"
    header, item, payload = post["body"].decode().rstrip("\n").split("\n")
    assert json.loads(item)["type"] == "event" and json.loads(item)["length"] == len(payload.encode())
    event = json.loads(payload)
    assert json.loads(header)["event_id"] == event["event_id"]
    exc = event["exception"]["values"][0]
    assert exc["type"] == "ValueError" and exc["value"] == "sentry-boom"
    frames = exc["stacktrace"]["frames"]
    assert frames[-1]["function"] == "fail" and frames[-1]["filename"].endswith("app.py")
    assert frames[-1]["context_line"] == "raise ValueError(msg)"
    assert any(not f["in_app"] for f in frames)  # celery's own frames
    assert event["server_name"] == "w1@stalktest"
    assert event["environment"] == "itest"
    assert event["contexts"]["celery_task"]["id"] == result.id
    assert event["contexts"]["celery_task"]["name"] == "app.fail"
    assert "sentry-boom" in event["contexts"]["celery_task"]["args"]
    wait_until(lambda: stalk.request("/metrics").text, lambda m: 'stalk_sentry_events_total{result="sent"} 1' in m,
               10, "the Sentry event counted as sent")
    # The failure-count rule (no channels) fires and is listed.
    wait_until(lambda: stalk.get_json("/api/alerts")["alerts"],
               lambda al: [a for a in al if a["rule"] == "Failures" and a["state"] == "firing"], 10,
               "Failures alert firing")


def test_queue_backlog_alert_and_a_hanging_receiver_does_not_slow_ingestion(stalk, worker, celery_app, receiver,
                                                                            redis_server):
    for i in range(5):
        celery_app.send_task("app.add", args=[i, i], queue="backlog")  # nobody consumes "backlog"
    wait_for(lambda: by_rule(receiver.json_posts("/hook"), "Backlog"), 20, "backlog alert on the webhook")
    fired = by_rule(receiver.json_posts("/hook"), "Backlog")[0]["alerts"][0]
    assert fired["labels"]["queue"] == "backlog" and fired["value"] >= 5
    wait_for(lambda: receiver.posts("/hang"), 10, "the hanging receiver was called")
    # Each channel has its own delivery thread: the 500 receiver ("broken", listed after "slow") is
    # called without waiting for the hanging one's 3 s timeout.
    wait_for(lambda: receiver.posts("/fail"), 10, "the 500 receiver was called")
    assert receiver.posts("/fail")[0]["at"] - receiver.posts("/hang")[0]["at"] < 2.0

    # While the notifier waits on the hanging receiver, events keep flowing into the state.
    t0 = time.time()
    ids = [celery_app.send_task("app.add", args=[i, 1]).id for i in range(30)]
    wait_for(lambda: all(stalk.task(i).get("state") == "SUCCESS" for i in ids), 30, "30 tasks ingested")
    ingest_seconds = time.time() - t0
    print(f"30 tasks sent->SUCCESS in stalk with a hanging receiver: {ingest_seconds:.2f}s")
    assert ingest_seconds < 15

    metrics = stalk.request("/metrics").text
    assert "stalk_alerts_firing " in metrics
    wait_until(lambda: stalk.request("/metrics").text,
               lambda m: 'stalk_alert_notifications_total{channel="broken",result="failure"} 1' in m, 30,
               "the 500 receiver counted as a failure after its retry")
    hook_ok = re.search(r'stalk_alert_notifications_total\{channel="hook",result="success"\} (\d+)', metrics)
    assert hook_ok and int(hook_ok.group(1)) >= 1, metrics
    assert 'stalk_sentry_events_total{result="dropped"} 0' in metrics

    # Nobody consumes "backlog": the no_consumer rule fires for it; w1 consumes "celery", whose rule
    # (for: 1m) stays at most pending.
    alerts = wait_until(lambda: stalk.get_json("/api/alerts")["alerts"],
                        lambda al: [a for a in al if a["rule"] == "NoConsumer" and a["state"] == "firing"], 10,
                        "NoConsumer firing for backlog")
    assert [a["labels"]["queue"] for a in alerts if a["rule"] == "NoConsumer"] == ["backlog"]
    assert not [a for a in alerts if a["rule"] == "CeleryConsumed" and a["state"] == "firing"]

    redis_server.client().delete("backlog")
    wait_until(lambda: by_rule(receiver.json_posts("/hook"), "Backlog"),
               lambda posts: [p["status"] for p in posts] == ["firing", "resolved"], 30, "backlog resolved")


def test_silences_api(stalk):
    body = json.dumps({"matchers": {"alertname": "Backlog"}, "duration": "1h", "comment": "maintenance"})
    import urllib.request
    req = urllib.request.Request(stalk.url("/api/alerts/silences"), data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
        sid = json.loads(r.read())["id"]
    listed = stalk.get_json("/api/alerts/silences")["silences"]
    assert [s["id"] for s in listed] == [sid] and listed[0]["state"] == "active"
    req = urllib.request.Request(stalk.url(f"/api/alerts/silences/{sid}"), method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    assert stalk.get_json("/api/alerts/silences")["silences"] == []


def test_exported_rules_pass_promtool(stalk_bin, rules_file, module_tmp):
    out = module_tmp / "prometheus-rules.yml"
    subprocess.run([str(stalk_bin), "rules", "export", "--alerts_config", str(rules_file), "-o", str(out)],
                   check=True, timeout=30)
    text = out.read_text()
    assert "alert: WorkerOffline" in text and "celery_queue_length" in text
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool not installed")
    r = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_rules_file_stops_startup_with_line_and_column(stalk_bin, redis_server, module_tmp):
    bad = module_tmp / "bad.yml"
    bad.write_text("rules:\n  - name: X\n    kind: worker_offline\n    fro: 1m\n")
    r = subprocess.run([str(stalk_bin), "serve", "--broker", redis_server.url, "--port", "0", "--db", "none",
                        "--alerts_config", str(bad)], capture_output=True, text=True, timeout=30,
                       cwd=module_tmp)
    assert r.returncode == 2
    assert f"{bad}:4:5: unknown key 'fro' in rule" in r.stdout + r.stderr
