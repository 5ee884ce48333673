"""`stalk capture` records a real Celery event stream; `stalk replay` applies it at full speed.

The capture is taken from a real worker running real tasks, so this is also the decoder test on real
captured payloads (grouped task.multi lists included): replay must apply every captured event with
no rejects, and track exactly the tasks that ran.
"""
import re
import subprocess
import uuid

import pytest

from harness import Stalk, event_channel, kombu_envelope, local_ports_to, task_event, wait_for


@pytest.fixture(scope="module")
def capture_file(stalk_bin, redis_server, stalk, worker, celery_app, module_tmp, get_json):
    path = module_tmp / "stream.stalkcap"
    proc = subprocess.Popen(
        [str(stalk_bin), "capture", "--broker", redis_server.url, "-o", str(path), "--duration", "60",
         "--max-messages", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The capture's own subscription must be up before tasks are sent (and before the SIGINT below:
        # a capture still starting would die of it): its connection, found by its local port.
        client = redis_server.client()

        def capture_subscribed():
            ports = local_ports_to(proc.pid, redis_server.port)
            return any(int(c["addr"].rsplit(":", 1)[1]) in ports and int(c.get("psub", 0)) > 0
                       for c in client.client_list())
        wait_for(capture_subscribed, 15, "capture subscribed")
        results = [celery_app.tasks["app.add"].delay(i, i) for i in range(20)]
        results += [celery_app.tasks["app.fail"].delay(f"boom {i}") for i in range(5)]
        for r in results:
            r.get(timeout=30, propagate=False)
        ids = {r.id for r in results}
        # stalk serve saw them all finish, so the capture (same channel, same Redis) has them too.
        wait_for(lambda: ids <= set(get_json("/api/tasks?state=SUCCESS")) | set(get_json("/api/tasks?state=FAILURE")),
                 30, "stalk saw every task finish")
    finally:
        proc.send_signal(2)  # capture also stops on its own after --duration; SIGINT ends it now
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return path, ids


def test_replay_applies_every_captured_event(stalk_bin, capture_file):
    path, ids = capture_file
    assert path.stat().st_size > 0
    out = subprocess.run([str(stalk_bin), "replay", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.search(r"events applied (\d+), rejected (\d+)", out.stdout)
    assert m, out.stdout
    applied, rejected = int(m.group(1)), int(m.group(2))
    assert rejected == 0, out.stdout
    # Each task: sent, received, started, succeeded|failed = 4 events at least; plus worker events.
    assert applied >= 4 * len(ids), out.stdout
    tracked = int(re.search(r"tasks tracked (\d+)", out.stdout).group(1))
    assert tracked == len(ids), out.stdout


def test_replay_of_a_truncated_capture_stops_cleanly(stalk_bin, capture_file, module_tmp):
    path, _ = capture_file
    cut = module_tmp / "cut.stalkcap"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])  # mid-record
    out = subprocess.run([str(stalk_bin), "replay", str(cut)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "events applied" in out.stdout


def test_replay_rejects_a_file_that_is_not_a_capture(stalk_bin, module_tmp):
    bogus = module_tmp / "bogus.stalkcap"
    bogus.write_bytes(b"not a capture at all\n")
    out = subprocess.run([str(stalk_bin), "replay", str(bogus)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "not a Stalk capture file" in out.stderr


def test_serve_capture_records_what_it_applies(stalk_bin, redis_server, module_tmp):
    """`stalk serve --capture` writes messages on the state writer's thread (not the broker reader's):
    what it applied is in the file, and a replay of the file tracks the same tasks."""
    path = module_tmp / "serve.stalkcap"
    s = Stalk(stalk_bin, redis_server.url, module_tmp / "stalk-capture",
              extra_args=["--db", "none", "--capture", str(path)]).start()
    try:
        s.wait_ready(redis_server)
        ids = [str(uuid.uuid4()) for _ in range(30)]
        client = redis_server.client()
        for i in ids:
            client.publish(event_channel("task.multi"),
                           kombu_envelope([task_event("task-received", i, name="app.add", args="(1, 2)")]))
        wait_for(lambda: set(ids) <= set(s.get_json("/api/tasks?limit=0")), 20, "stalk applied all 30 tasks")
    finally:
        s.stop()
    out = subprocess.run([str(stalk_bin), "replay", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"events applied 30, rejected 0", out.stdout), out.stdout
    assert int(re.search(r"tasks tracked (\d+)", out.stdout).group(1)) == 30, out.stdout
