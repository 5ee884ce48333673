"""/metrics against a real Celery worker and a real Prometheus server.

One batch of mixed tasks is sent at module start (fixture `run`): successes, failures (ValueError),
tasks that retry once then succeed, and one sleep that keeps the worker busy. While it runs, a scrape
is taken (`run["inflight"]`, once succeeded, failed and retried events all show and a task is still
executing). A private `prometheus` (Debian package) scrapes stalk every second from before the batch.

Checks: the in-flight scrape passes `promtool check metrics`; the task counters Prometheus stored
equal what the test sent, by state and task name; stalk's counters agree with its own REST API
(/api/tasks by state); a SIGKILLed worker's flower_worker_online goes to 0 in Prometheus within
heartbeat expiry plus a scrape; OpenMetrics is served when Accept asks for it.
"""
import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from harness import Proc, free_port, tail, wait_for, wait_until

N_ADD, N_FAIL, N_RETRY = 6, 3, 2
SLEEP_SECONDS = 8  # the window in which the in-flight scrape must catch the mix
# Succeeded: every add, each retry_once on its second attempt, the sleep.
EXPECTED = {
    "succeeded": {"app.add": N_ADD, "app.retry_once": N_RETRY, "app.sleep": 1},
    "failed": {"app.fail": N_FAIL},
    "retried": {"app.retry_once": N_RETRY},
    # One task-started per attempt: a retried task runs twice under the same id.
    "started": {"app.add": N_ADD, "app.fail": N_FAIL, "app.retry_once": 2 * N_RETRY, "app.sleep": 1},
}
# Heartbeat expiry (2 x 2 s) + stalk's liveness tick (1 s) + one scrape (1 s), with slack for a
# loaded machine (test_workers.py uses the same deadline against the API).
OFFLINE_DEADLINE = 15.0

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """Prometheus text 0.0.4 -> [(name, {label: value}, float)], comments skipped."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def by_name(samples, metric, label, **match):
    """Sum of `metric` samples grouped by `label`, over samples whose labels include `match`."""
    sums = {}
    for name, labels, value in samples:
        if name == metric and all(labels.get(k) == v for k, v in match.items()):
            sums[labels[label]] = sums.get(labels[label], 0) + value
    return {k: v for k, v in sums.items() if v}


def scrape(stalk, accept=None):
    req = urllib.request.Request(stalk.url("/metrics"), headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()


class Prometheus:
    """A private prometheus server on 127.0.0.1 scraping stalk's /metrics every second."""

    def __init__(self, work_dir, target_port):
        self.dir = work_dir
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: stalk\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n")
        self.proc = Proc("prometheus", [
            "prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ], self.dir / "prometheus.log", cwd=self.dir)

    def start(self):
        self.proc.start()

        def ready():
            if not self.proc.alive():
                raise RuntimeError(f"prometheus exited: {tail(self.proc.log, 3000)}")
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        wait_for(ready, 30, "prometheus to answer /-/ready")
        return self

    def stop(self):
        self.proc.stop(timeout=10)

    def query(self, expr):
        """Instant query -> [(labels, float)]."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]

    def by(self, expr, label):
        return {labels.get(label, ""): value for labels, value in self.query(expr) if value}

    def target(self):
        url = f"http://127.0.0.1:{self.port}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["data"]["activeTargets"][0]


@pytest.fixture(scope="module")
def prometheus(stalk, module_tmp):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    p = Prometheus(module_tmp / "prometheus", stalk.port).start()
    try:
        wait_until(p.target, lambda t: t["health"] == "up", 20, "prometheus to scrape stalk successfully")
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def run(stalk, worker, celery_app, prometheus):
    """Sends the batch, takes a scrape while it runs, waits for every outcome; returns ids + scrape."""
    t = celery_app.tasks
    sleeper = t["app.sleep"].delay(SLEEP_SECONDS)
    adds = [t["app.add"].delay(i, i) for i in range(N_ADD)]
    fails = [t["app.fail"].delay(f"boom {i}") for i in range(N_FAIL)]
    retries = [t["app.retry_once"].delay(i) for i in range(N_RETRY)]

    def inflight():
        text = scrape(stalk)[2]
        s = parse(text)
        total = lambda metric: sum(v for n, _, v in s if n == metric)  # noqa: E731
        busy = total("flower_worker_number_of_currently_executing_tasks") >= 1
        mixed = all(total(f"celery_task_{k}_total") >= 1 for k in ("succeeded", "failed", "retried"))
        # A scrape is written in lock slices, not as one snapshot (src/metrics/README.md): the flower_
        # families may be a few events behind the celery_ ones, so wait for both to show the retry.
        retried = by_name(s, "flower_events_total", "type").get("task-retried", 0) >= 1
        return text if busy and mixed and retried else None
    text = wait_for(inflight, SLEEP_SECONDS + 10,
                    "a scrape with succeeded, failed and retried events while a task still executes")

    assert [r.get(timeout=30) for r in adds] == [2 * i for i in range(N_ADD)]
    assert [r.get(timeout=30) for r in retries] == list(range(N_RETRY))
    assert sleeper.get(timeout=30) == SLEEP_SECONDS
    for r in fails:
        r.get(timeout=30, propagate=False)  # no exception frames kept alive past the fixture
        assert r.state == "FAILURE" and isinstance(r.result, ValueError), (r.state, r.result)
    ids = [r.id for r in [sleeper, *adds, *fails, *retries]]
    # Results come from the backend; wait until stalk saw the last events too.
    wait_until(lambda: stalk.tasks(limit=0), lambda got: all(
        got.get(i, {}).get("state") in ("SUCCESS", "FAILURE") for i in ids), 15,
        "stalk to show every task of the batch finished")
    return {"ids": ids, "inflight": text}


def test_inflight_scrape_passes_promtool(run):
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    text = run["inflight"]
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert check.returncode == 0, (check.stdout + check.stderr).decode() + "\n--- scrape ---\n" + text[:20000]
    samples = parse(text)
    assert by_name(samples, "celery_task_failed_total", "exception").get("ValueError", 0) >= 1
    assert by_name(samples, "flower_events_total", "type").get("task-retried", 0) >= 1


def test_prometheus_counters_equal_tasks_sent_by_state(run, prometheus):
    def stored():
        got = {k: prometheus.by(f"sum by (name) (celery_task_{k}_total)", "name") for k in EXPECTED}
        got["flower-failed"] = prometheus.by('sum by (task) (flower_events_total{type="task-failed"})', "task")
        got["flower-succeeded"] = prometheus.by('sum by (task) (flower_events_total{type="task-succeeded"})', "task")
        return got
    expected = dict(EXPECTED, **{"flower-failed": EXPECTED["failed"], "flower-succeeded": EXPECTED["succeeded"]})
    got = wait_until(stored, lambda g: g == expected, 15, "Prometheus to store the batch's counters")
    assert got == expected
    total = prometheus.query("sum(celery_task_succeeded_total)")
    assert total and total[0][1] == sum(EXPECTED["succeeded"].values()), total
    # Histogram: one runtime observation per success, as Prometheus stored it.
    count = prometheus.by('sum by (name) (celery_task_runtime_count)', "name")
    assert count == EXPECTED["succeeded"], count
    # Prometheus negotiates OpenMetrics (its Accept header prefers it): the scrape parsed without error.
    target = prometheus.target()
    assert target["health"] == "up" and not target["lastError"], target


def test_counters_agree_with_rest_api(stalk, run):
    tasks = stalk.tasks(limit=0)
    samples = parse(scrape(stalk)[2])
    api = {"succeeded": {}, "failed": {}, "retried": {}}
    for info in tasks.values():
        key = {"SUCCESS": "succeeded", "FAILURE": "failed"}.get(info["state"])
        if key:
            api[key][info["name"]] = api[key].get(info["name"], 0) + 1
        if info.get("retries"):
            api["retried"][info["name"]] = api["retried"].get(info["name"], 0) + info["retries"]
    for key in api:
        assert by_name(samples, f"celery_task_{key}_total", "name") == api[key], key
    assert api["succeeded"] == EXPECTED["succeeded"] and api["failed"] == EXPECTED["failed"], api
    # Flower's set counts the same events.
    assert by_name(samples, "flower_events_total", "task", type="task-succeeded") == api["succeeded"]
    assert by_name(samples, "flower_events_total", "task", type="task-failed") == api["failed"]
    tracked = [v for n, _, v in samples if n == "stalk_tasks_tracked"]
    assert tracked == [len(tasks)], (tracked, len(tasks))


def test_sigkilled_worker_goes_offline_in_prometheus(stalk, prometheus, start_worker):
    name = "w9@stalktest"
    w = start_worker(name, queues="w9q", concurrency=1)
    query = f'flower_worker_online{{worker="{name}"}}'
    wait_until(lambda: prometheus.query(query), lambda r: r and r[0][1] == 1.0, 15, f"{query} == 1 in Prometheus")
    w.kill()
    killed = time.monotonic()
    wait_until(lambda: prometheus.query(query), lambda r: r and r[0][1] == 0.0, OFFLINE_DEADLINE,
               f"{query} == 0 in Prometheus after SIGKILL")
    print(f"flower_worker_online 0 in Prometheus {time.monotonic() - killed:.1f}s after SIGKILL")
    up = prometheus.query(f'celery_worker_up{{hostname="{name}"}}')
    assert up and up[0][1] == 0.0, up


def test_openmetrics_when_accept_asks(stalk, run):
    status, ctype, text = scrape(stalk, "application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
    assert text.endswith("# EOF\n"), text[-200:]
    assert text.count("# EOF") == 1
    assert "# TYPE celery_task_succeeded counter\n" in text  # OpenMetrics: family named without _total
    status, ctype, plain = scrape(stalk)
    assert ctype.startswith("text/plain; version=0.0.4"), ctype
    assert "# EOF" not in plain and "# TYPE celery_task_succeeded_total counter\n" in plain
    parser = pytest.importorskip("prometheus_client.openmetrics.parser")
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    succeeded = sum(s.value for s in families["celery_task_succeeded"].samples if s.name.endswith("_total"))
    assert succeeded == sum(EXPECTED["succeeded"].values())
