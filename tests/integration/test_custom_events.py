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


RULES = """
rules:
  - name: orders_paid_total
    type: counter
    help: Orders paid, by tenant
    match: {event: order-paid}
    labels: {tenant: fields.tenant}
    value: fields.amount
  - name: progress_runs_by_tenant_total
    type: counter
    match: {event: task-succeeded, task: "app.prog*"}
    labels: {tenant: result.tenant, worker: worker}
  - name: progress_steps
    type: histogram
    match: {event: task-received, task: app.progress}
    labels: {tenant: {from: kwargs, regex: "'tenant': '([^']+)'"}}
    value: kwargs.steps
    buckets: [1, 2, 5]
"""


def sample(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix + " ") or line.startswith(prefix + "{") and line.split(" ")[0] == prefix:
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def rules_stalk(stalk_bin, redis_server, module_tmp, worker):
    from harness import Stalk
    path = module_tmp / "rules.yml"
    path.write_text(RULES)
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "rules", extra_args=["--db", "none", "--metric_rules", path])
    s.start()
    s.wait_ready(redis_server)
    yield s, path
    s.stop()


def test_business_metric_rules_in_a_real_scrape(rules_stalk, celery_app):
    s, path = rules_stalk
    for tenant, amount in (("acme", 10), ("acme", 5), ("globex", 7)):
        celery_app.send_task("app.progress", kwargs={"steps": 3, "tenant": tenant, "amount": amount}).get(timeout=30)
    text = wait_until(lambda: s.request("/metrics").text,
                      lambda t: sample(t, 'stalk_biz_orders_paid_total{tenant="globex"}') == 7, 20,
                      "the order-paid rule to count globex")
    assert sample(text, 'stalk_biz_orders_paid_total{tenant="acme"}') == 15
    assert 'stalk_biz_progress_runs_by_tenant_total{tenant="acme",worker="w1@stalktest"} 2' in text
    assert 'stalk_biz_progress_steps_bucket{tenant="acme",le="5"} 2' in text
    assert 'stalk_biz_progress_steps_sum{tenant="globex"} 3' in text
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    problems = [l for l in (out.stdout + out.stderr).splitlines() if l and "counter metrics should have" not in l
                and "no help text" not in l]
    assert not [p for p in problems if "stalk_biz" in p], problems

    # Reload on SIGHUP: a broken file is refused (the rules in force stay), a good one keeps counters.
    import signal
    path.write_text("rules:\n  - name: bad name\n    type: counter\n")
    s.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: s.proc.log.read_text(errors="replace"), lambda t: "not reloaded" in t, 10, "the refusal")
    assert "rules.yml:2:5: name must match" in s.proc.log.read_text(errors="replace")
    path.write_text(RULES)
    s.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: s.proc.log.read_text(errors="replace"), lambda t: "3 business-metric rules reloaded" in t, 10,
               "the reload")
    assert sample(s.request("/metrics").text, 'stalk_biz_orders_paid_total{tenant="acme"}') == 15


def test_malformed_rule_file_is_refused_with_line_and_column(stalk_bin, module_tmp):
    bad = module_tmp / "bad.yml"
    bad.write_text("rules:\n  - name: ok\n    type: counter\n    match: {event: x}\n    labels: {tenant: fieldz.t}\n")
    out = subprocess.run([str(stalk_bin), "serve", "--broker", "redis://127.0.0.1:1/0", "--db", "none",
                          "--metric_rules", str(bad), "--port", "0"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2
    assert "bad.yml:5:22: unknown value 'fieldz.t'" in out.stdout + out.stderr, out.stdout + out.stderr
