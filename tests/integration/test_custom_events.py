"""Custom events and worker-time cost (issue 12) with a real Celery worker: tasks that send
`task-progress` events and an application event (`order-paid`) of their own, tasks that sleep a known
time. Checks the task's custom events and progress in /api/task/info, the counts by type, the cost
view, and the metric families in a promtool-clean scrape.
"""
import shutil
import subprocess

import pytest

from harness import wait_until


@pytest.fixture(scope="module")
def running(worker):
    return worker


def test_progress_events_are_kept_on_the_task(stalk, running, celery_app):
    r = celery_app.send_task("app.progress", kwargs={"steps": 4, "tenant": "acme"})
    def fetch():
        resp = stalk.request(f"/api/task/info/{r.id}")
        return resp.json() if resp.status == 200 else {}
    info = wait_until(fetch,
        lambda t: t.get("state") == "SUCCESS" and len(t.get("custom_events", [])) == 4, 30,
        "the task to finish with its 4 progress events")
    assert info["progress"] == 100
    events = info["custom_events"]
    assert [e["type"] for e in events] == ["task-progress"] * 4
    assert [e["fields"]["current"] for e in events] == [1, 2, 3, 4]
    assert all(e["fields"]["tenant"] == "acme" and e["hostname"] for e in events)
    assert info["custom_events_total"] == 4


def test_custom_event_counts_by_type(stalk, running, celery_app):
    celery_app.send_task("app.progress", kwargs={"steps": 2, "tenant": "globex"}).get(timeout=30)
    counts = wait_until(lambda: stalk.get_json("/api/stalk/custom-events")["types"],
                        lambda c: c.get("order-paid", {}).get("count", 0) >= 1, 20, "order-paid to be counted")
    assert counts["order-paid"]["kind"] == "other"
    assert counts["task-progress"]["kind"] == "task" and counts["task-progress"]["count"] >= 2


def test_cost_of_sleeping_tasks_matches_within_5_percent(stalk, running, celery_app):
    before = {r["key"]: r for r in stalk.get_json("/api/stalk/cost?group=name")["rows"]}
    results = [celery_app.send_task("app.sleep", args=[1.0]) for _ in range(4)]
    for r in results:
        r.get(timeout=30)
    expected = 4 * 1.0

    def spent():
        rows = {r["key"]: r for r in stalk.get_json("/api/stalk/cost?group=name")["rows"]}
        now = rows.get("app.sleep", {"worker_seconds": 0, "tasks": 0})
        was = before.get("app.sleep", {"worker_seconds": 0, "tasks": 0})
        return now["worker_seconds"] - was["worker_seconds"], now["tasks"] - was["tasks"]
    seconds, tasks = wait_until(spent, lambda v: v[1] == 4, 30, "4 sleep tasks in the cost view")
    assert abs(seconds - expected) / expected < 0.05, seconds
    by_worker = stalk.get_json("/api/stalk/cost?group=worker")["rows"]
    assert any(r["key"] == running.name and r["worker_seconds"] >= expected * 0.95 for r in by_worker), by_worker
    assert stalk.request("/api/stalk/cost?group=bogus").status == 400


def test_metrics_families_in_a_clean_scrape(stalk, running, celery_app):
    celery_app.send_task("app.progress", kwargs={"steps": 1}).get(timeout=30)
    text = wait_until(lambda: stalk.request("/metrics").text,
                      lambda t: 'stalk_custom_events_total{type="order-paid",kind="other"}' in t, 20,
                      "the custom event family")
    assert 'stalk_task_worker_seconds_total{task="app.progress",queue="celery"}' in text
    assert "stalk_worker_busy_seconds_total{worker=" in text
    if shutil.which("promtool"):
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        problems = [l for l in (out.stdout + out.stderr).splitlines() if "counter metrics should have" not in l]
        assert out.returncode == 0 or not problems, out.stdout + out.stderr
