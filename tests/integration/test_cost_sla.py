"""Cost windows and the SLA view (issue 12) with a real Celery worker: tasks that sleep a known time,
some below and some above an SLA target. The 1 h cost window comes from the store's hourly rollup
(within 5 % of the known worker time) and is the same after Stalk restarts on the same --db; the SLA
counts are exact in the API and in a real scrape (promtool check metrics), and the task-type page
is served.
"""
import shutil
import subprocess

import pytest

from harness import Stalk, Worker, free_port, wait_until

RULES = """
sla:
  - {task: app.sleep, target: 0.5s}
  - {task: "app.ad*", target: 10s}
"""


def sample(text, prefix):
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def setup(stalk_bin, redis_server, module_tmp):
    rules = module_tmp / "rules.yml"
    rules.write_text(RULES)
    port = free_port()

    def make():
        return Stalk(stalk_bin, redis_server.url, module_tmp / "stalk", port=port,
                     extra_args=["--db", str(module_tmp / "history.db"), "--metric_rules", str(rules),
                                 "--cost_per_worker_hour", "3.6"])
    state = {"stalk": make().start(), "make": make}
    try:
        state["stalk"].wait_ready(redis_server)
        w = Worker("cost1@stalktest", redis_server.url, module_tmp / "cost1", concurrency=2).start()
        try:
            w.wait_ready()
            state["worker"] = w
            yield state
        finally:
            w.stop()
        state["stalk"].check_alive()
    finally:
        state["stalk"].stop()


def cost_row(stalk, window, key="app.sleep"):
    rows = stalk.get_json(f"/api/stalk/cost?group=name&window={window}")["rows"]
    return next((r for r in rows if r["key"] == key), {"worker_seconds": 0, "tasks": 0, "cost": 0})


def test_sla_counts_and_cost_windows_from_the_store(setup, redis_server, celery_app):
    stalk = setup["stalk"]
    # Warm both pool processes first: a child's first task carries its start-up (~0.1 s on a busy
    # machine), which would count against a short sleep.
    for r in [celery_app.send_task("app.add", args=[i, i]) for i in range(6)]:
        r.get(timeout=30)
    sleeps = [0.3, 0.3, 0.3, 1.0, 1.0]  # 3 within the 0.5 s target, 2 over
    results = [celery_app.send_task("app.sleep", args=[s]) for s in sleeps]
    failed = celery_app.send_task("app.fail", args=["boom"])
    for r in results:
        r.get(timeout=30)
    with pytest.raises(Exception):
        failed.get(timeout=30)
    expected = sum(sleeps)

    sla = wait_until(lambda: stalk.get_json("/api/stalk/sla")["tasks"],
                     lambda t: any(x["name"] == "app.sleep" and x["runs"] == 5 for x in t), 20, "5 SLA runs")
    row = next(x for x in sla if x["name"] == "app.sleep")
    assert (row["within"], row["over"], row["failed"], row["target_seconds"]) == (3, 2, 0, 0.5), row
    assert abs(row["ratio"] - 0.6) < 1e-9
    assert not [x for x in sla if x["name"] == "app.fail"]  # no target matches it

    text = stalk.request("/metrics").text
    assert sample(text, 'stalk_task_sla_runs_total{name="app.sleep",outcome="within"}') == 3
    assert sample(text, 'stalk_task_sla_runs_total{name="app.sleep",outcome="over"}') == 2
    assert sample(text, 'stalk_task_sla_runs_total{name="app.sleep",outcome="failed"}') == 0
    assert sample(text, 'stalk_task_sla_ratio{name="app.sleep"}') == 0.6
    assert sample(text, 'stalk_task_sla_target_seconds{name="app.sleep"}') == 0.5
    if shutil.which("promtool"):
        out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        problems = [l for l in (out.stdout + out.stderr).splitlines() if "sla" in l or "result_backend" in l]
        assert not problems, out.stdout + out.stderr

    # The 1 h window comes from the store's rollup, written by the store thread after each batch.
    one_hour = wait_until(lambda: cost_row(stalk, "1h"), lambda r: r["tasks"] == 5, 20, "5 tasks in the 1h window")
    assert abs(one_hour["worker_seconds"] - expected) / expected < 0.05, one_hour
    assert abs(one_hour["cost"] - one_hour["worker_seconds"] / 1000) < 1e-9  # 3.6 per worker-hour
    for window in ("24h", "7d"):
        assert cost_row(stalk, window)["tasks"] == 5
    assert stalk.get_json("/api/stalk/cost?group=name&window=1h")["source"] == "store"
    since_start = cost_row(stalk, "since_start")
    assert abs(since_start["worker_seconds"] - one_hour["worker_seconds"]) < 1e-6
    assert stalk.request("/api/stalk/cost?window=2h").status == 400

    page = stalk.request("/task-type/app.sleep")
    assert page.status == 200 and "task_type.js" in page.text

    # After a restart on the same --db the windows still hold the work (since start begins again).
    stalk.stop()
    setup["stalk"] = stalk = setup["make"]().start()
    stalk.wait_ready(redis_server)
    again = cost_row(stalk, "1h")
    assert again["tasks"] == 5 and abs(again["worker_seconds"] - one_hour["worker_seconds"]) < 1e-6, again
    assert cost_row(stalk, "since_start")["tasks"] == 0
