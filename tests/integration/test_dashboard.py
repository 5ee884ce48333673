"""The dashboard in a real browser: Debian's headless chromium driven by playwright-core
(tests/integration/web/dashboard.mjs), against stalk fed by a real Celery worker on a real
redis-server. Two stalks read the same broker: one at the root, one under --url_prefix flower.

Checked in the browser: every page loads with no console error and no CSP violation; the tasks
table pages, filters and sorts on the server; a task sent after the page loaded appears without a
reload (server-sent events) and the scroll position stays; a task whose args hold <script> and
<img onerror> shows them as text (no dialog, no element); a failed task's page shows its traceback;
links work under the prefix. The worker page's remote-control buttons reach the real worker (pool
grow/shrink, add/cancel consumer with a confirmation, rate and time limits, a refused call shown as
text), the task page revokes a waiting task and terminates a running one (both turn REVOKED through
the real worker's events), and the time-range filter narrows, is kept in the URL in Flower's names,
survives a reload and a live update. With --basic_auth_file users, a viewer sees no control buttons
and the server refuses its POST anyway; an operator sees and uses them (/api/stalk/whoami).
Checked over HTTP: security headers, static caching, the summary and the event stream.
Screenshots go to $STALK_SCREENSHOTS (default /tmp/stalk-dashboard-screenshots); with
$STALK_README_SCREENSHOTS=<dir> the full run also saves one 1280x800 picture per page there
(docs/screenshots/ in README, compressed with pngquant).

Needs node, npm and /usr/bin/chromium (scripts/bootstrap.sh installs them); playwright-core is
installed into tests/integration/web/node_modules (not in git) on first run.
"""
import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import Stalk, wait_until

WEB = Path(__file__).resolve().parent / "web"
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("STALK_SCREENSHOTS", "/tmp/stalk-dashboard-screenshots"))
XSS = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
FAIL_MESSAGE = "boom from the dashboard test"
N_ADD, N_FAIL, N_ECHO = 30, 3, 2
VIEWER_PASSWORD, OPERATOR_PASSWORD = "viewer-pass-8d2f", "operator-pass-41ce"


@pytest.fixture(scope="module")
def node_tools():
    node, npm = shutil.which("node"), shutil.which("npm")
    missing = [name for name, ok in (("node", node), ("npm", npm), (CHROMIUM, os.access(CHROMIUM, os.X_OK)))
               if not ok]
    if missing:
        pytest.skip(f"browser test needs {', '.join(missing)} (scripts/bootstrap.sh installs them)")
    if not (WEB / "node_modules" / "playwright-core" / "package.json").is_file():
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, f"npm install failed:\n{r.stdout}\n{r.stderr}"
    return node


@pytest.fixture(scope="module")
def prefixed(stalk_bin, redis_server, module_tmp):
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk-prefix", extra_args=["--url_prefix", "flower"])
    s.start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()
    finally:
        s.stop()


@pytest.fixture(scope="module")
def seeded(stalk, prefixed, worker, celery_app):
    """Tasks sent once both stalks are subscribed: successes, failures, and one with hostile args."""
    app = celery_app
    ids = {"add": [app.tasks["app.add"].delay(i, i).id for i in range(N_ADD)],
           "fail": [app.tasks["app.fail"].delay(FAIL_MESSAGE).id for _ in range(N_FAIL)],
           "echo": [app.tasks["app.echo"].delay("hello").id for _ in range(N_ECHO - 1)]}
    ids["xss"] = app.tasks["app.echo"].delay(XSS).id
    total = N_ADD + N_FAIL + N_ECHO
    for s in (stalk, prefixed):
        prefix = "/flower" if s is prefixed else ""

        def finished(s=s, prefix=prefix):
            return s.get_json(f"{prefix}/api/tasks?limit=0")

        wait_until(finished, lambda tasks: sum(t["state"] in ("SUCCESS", "FAILURE") for t in tasks.values()) == total,
                   30, f"{total} seeded tasks finished in stalk{prefix}")
    return {"ids": ids, "total": total}


def run_browser(node, config, celery_app, timeout=150):
    """Runs dashboard.mjs with `config`; answers its NEED requests; returns (returncode, output)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    cfg = SHOTS / f"config-{config['mode']}.json"
    cfg.write_text(json.dumps(dict(config, shots_dir=str(SHOTS))))
    proc = subprocess.Popen([node, str(WEB / "dashboard.mjs"), str(cfg)], cwd=WEB, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            task_id = None
            if line.startswith("NEED send_task"):
                task_id = celery_app.tasks["app.add"].delay(1000, 1).id
            elif line.startswith("NEED send_countdown"):  # waits at the worker: revocable
                task_id = celery_app.tasks["app.add"].apply_async((2, 2), countdown=15).id
            elif line.startswith("NEED send_sleep"):  # runs long enough to be terminated
                task_id = celery_app.tasks["app.sleep"].delay(60).id
            if task_id:
                proc.stdin.write(json.dumps({"id": task_id}) + "\n")
                proc.stdin.flush()
        proc.wait(10)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return proc.returncode, "\n".join(lines)


def test_dashboard_headers_assets_summary_and_stream(stalk, seeded):
    page = stalk.request("/tasks")
    assert page.status == 200, page
    headers = {k.lower(): v for k, v in page.headers.items()}
    assert headers["content-type"] == "text/html; charset=utf-8"
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert '<base href="/">' in page.text

    css = stalk.request("/static/app.css")
    assert css.status == 200 and css.headers["Content-Type"] == "text/css; charset=utf-8", css
    etag = css.headers["ETag"]
    req = urllib.request.Request(stalk.url("/static/app.css"), headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(req, timeout=5)
    assert not_modified.value.code == 304

    summary = stalk.get_json("/api/stalk/summary")
    assert summary["tasks"]["by_state"]["FAILURE"] >= N_FAIL, summary
    assert summary["by_worker"]["w1@stalktest"]["SUCCESS"] >= N_ADD + N_ECHO, summary
    assert summary["workers"]["online"] == 1, summary

    # The event stream: server-sent events once a second. The first is the latest one broadcast
    # (up to a second old), so read a few until the counts include the finished seeded tasks.
    with urllib.request.urlopen(stalk.url("/api/events/stream"), timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        messages = []
        for _ in range(5):
            line = resp.readline().decode()
            assert line.startswith("data: "), line
            assert resp.readline() == b"\n"
            messages.append(json.loads(line[len("data: "):]))
            counts = messages[-1]["tasks"]
            if counts["total"] >= seeded["total"] and counts["by_state"]["FAILURE"] >= N_FAIL:
                break
    message = messages[-1]
    assert message["tasks"]["total"] >= seeded["total"], messages
    assert message["tasks"]["by_state"]["FAILURE"] >= N_FAIL, message
    assert message["workers"]["online"] == 1, message
    assert len(messages) >= 1 and all(m["time"] > 0 for m in messages)


def test_dashboard_in_browser(node_tools, stalk, seeded, celery_app, redis_server):
    ids = seeded["ids"]
    config = {"base": stalk.url("/"), "mode": "full", "seeded": seeded["total"], "failed": N_FAIL,
              "ids": {"fail": ids["fail"][0], "xss": ids["xss"]}}
    alerting = None
    if os.environ.get("STALK_README_SCREENSHOTS"):
        config["readme_dir"] = str(Path(os.environ["STALK_README_SCREENSHOTS"]).resolve())
        alerting = readme_alerting_stalk(stalk, redis_server, celery_app)
        config["alerts_base"] = alerting.url("/")
    try:
        rc, out = run_browser(node_tools, config, celery_app, timeout=240 if "readme_dir" in config else 150)
    finally:
        if alerting:
            alerting.stop()
    assert rc == 0 and out.endswith("OK"), out
    for name in ("overview", "workers", "worker", "worker-controls", "tasks-failed", "tasks-range", "tasks-xss",
                 "task-failed", "task-revoked", "tasks-live", "task"):
        assert (SHOTS / f"full-{name}.png").stat().st_size > 0, name
    assert stalk.get_json("/api/stalk/summary")["streams"]["dropped_slow"] == 0
    # The browser's control calls are in the audit log, as any client's are.
    actions = {e["action"] for e in stalk.get_json("/api/admin/audit?limit=100")["entries"]}
    assert {"pool_grow", "pool_shrink", "add_consumer", "cancel_consumer", "revoke"} <= actions, actions


README_ALERTS = """rules:
  - name: TaskFailures
    kind: task_failure_count
    severity: warning
    annotations: {summary: "app.fail failed in the last 5 minutes"}
    channels: []
    params: {task: app.fail, window: 5m, threshold: 0}
  - name: NightlyReportMissing
    kind: dead_man
    severity: critical
    annotations: {summary: "app.nightly has not succeeded today"}
    channels: []
    params: {task: app.nightly, max_age: 2s}
  - {name: WorkerOffline, kind: worker_offline, severity: critical, channels: [], params: {worker: "*"}}
  - {name: Backlog, kind: queue_length, channels: [], params: {queue: celery, threshold: 1000}}
"""


def readme_alerting_stalk(stalk, redis_server, celery_app):
    """For the README's Alerts picture only: a Stalk with rules; the dead-man's switch fires."""
    work = stalk.dir.parent / "stalk-alerts"
    work.mkdir(parents=True, exist_ok=True)
    (work / "alerts.yml").write_text(README_ALERTS)
    s = Stalk(stalk.binary, stalk.broker_url, work, extra_args=["--alerts_config", str(work / "alerts.yml")])
    s.start()
    s.wait_ready(redis_server)
    wait_until(lambda: s.get_json("/api/alerts"), lambda a: a["firing"] >= 1, 30, "an alert fires")
    return s


def hash_password(stalk_bin, password):
    out = subprocess.run([str(stalk_bin), "hash-password", "--cost", "4"], input=password + "\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def secured(stalk_bin, redis_server, module_tmp, worker):
    users = module_tmp / "users.txt"
    users.write_text(f"watcher:{hash_password(stalk_bin, VIEWER_PASSWORD)}:viewer\n"
                     f"ops:{hash_password(stalk_bin, OPERATOR_PASSWORD)}:operator\n")
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk-secured", extra_args=["--basic_auth_file", users])
    s.start()
    try:
        s.wait_ready(redis_server)
        yield s
        s.check_alive()
    finally:
        s.stop()


def call(stalk, path, user, password, method="GET", origin=True):
    req = urllib.request.Request(stalk.url(path), method=method, data=b"" if method == "POST" else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if origin:
        req.add_header("Origin", stalk.url("").rstrip("/"))
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_whoami_and_control_refused_for_viewer_over_http(secured, stalk, worker):
    assert stalk.get_json("/api/stalk/whoami") == {"user": None, "role": "admin", "auth_enabled": False}
    assert call(secured, "/api/stalk/whoami", "watcher", VIEWER_PASSWORD) == (
        200, {"user": "watcher", "role": "viewer", "auth_enabled": True})
    assert call(secured, "/api/stalk/whoami", "ops", OPERATOR_PASSWORD) == (
        200, {"user": "ops", "role": "operator", "auth_enabled": True})
    # What the hidden buttons would send: refused for the viewer, done for the operator.
    status, body = call(secured, "/api/worker/pool/grow/w1@stalktest?n=1", "watcher", VIEWER_PASSWORD, "POST")
    assert status == 403 and "needs operator" in body["error"], body
    status, body = call(secured, "/api/worker/pool/grow/w1@stalktest?n=1", "ops", OPERATOR_PASSWORD, "POST")
    assert status == 200 and body == {"message": "Growing 'w1@stalktest' worker's pool by 1"}, body
    status, body = call(secured, "/api/worker/pool/shrink/w1@stalktest?n=1", "ops", OPERATOR_PASSWORD, "POST")
    assert status == 200, body


@pytest.fixture(scope="module")
def secured_task(secured, celery_app):
    """A task the secured stalk has seen finish (it may have started after the seeded ones)."""
    task_id = celery_app.tasks["app.add"].delay(7, 8).id
    wait_until(lambda: call(secured, f"/api/task/info/{task_id}", "watcher", VIEWER_PASSWORD),
               lambda r: r[0] == 200 and r[1]["state"] == "SUCCESS", 30, "the secured stalk saw the task finish")
    return task_id


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_control_buttons_follow_the_role_in_browser(node_tools, secured, secured_task, celery_app, role):
    user, password = ("watcher", VIEWER_PASSWORD) if role == "viewer" else ("ops", OPERATOR_PASSWORD)
    rc, out = run_browser(node_tools, {
        "base": secured.url("/"), "mode": role, "user": user, "password": password,
        "ids": {"task": secured_task},
    }, celery_app)
    assert rc == 0 and out.endswith("OK"), out


def test_dashboard_under_url_prefix(node_tools, prefixed, seeded, celery_app):
    assert prefixed.request("/tasks").status == 404
    page = prefixed.request("/flower/tasks")
    assert page.status == 200 and '<base href="/flower/">' in page.text, page
    rc, out = run_browser(node_tools, {
        "base": prefixed.url("/flower/"), "mode": "prefix", "seeded": seeded["total"], "failed": N_FAIL,
        "ids": {},
    }, celery_app)
    assert rc == 0 and out.endswith("OK"), out
