"""Hostile input on the event channel: stalk must stay up, count each rejected message/event by
reason in /api/stalk/stats (`rejected: {reason: n}`, names from src/protocol/reject_reason.h), and
still apply the good events that share a list with a bad one.

Messages are PUBLISHed with redis-py straight onto "/0.celeryev/task.multi" (and
"/0.celeryev/worker.heartbeat"), where a Celery 5.2 worker publishes its task events.
"""
import json
import pickle
import time
import uuid

import pytest

from harness import event_channel, kombu_envelope, task_event, wait_for

TASK_MULTI = event_channel("task.multi")
HEARTBEAT = event_channel("worker.heartbeat")


def rejected(stalk):
    stats = stalk.stats()
    assert isinstance(stats.get("rejected"), dict), f"stats lacks a rejected{{reason: n}} object: {stats}"
    return stats["rejected"]


def publish_expect_rejects(redis_server, stalk, payload, reasons, count=1, channel=TASK_MULTI):
    """PUBLISH payload; wait until `count` more rejects are counted, all under one of `reasons`."""
    before = rejected(stalk)
    receivers = redis_server.client().publish(channel, payload)
    assert receivers >= 1, "nobody subscribed: stalk is not listening"

    def delta():
        now = rejected(stalk)
        d = {k: now.get(k, 0) - before.get(k, 0) for k in set(now) | set(before)}
        d = {k: v for k, v in d.items() if v}
        return d if sum(d.values()) >= count else None

    got = wait_for(delta, 10, f"{count} more reject(s) under {sorted(reasons)}")
    assert sum(got.values()) == count and set(got) <= set(reasons), (
        f"expected {count} reject(s) under {sorted(reasons)}, stats moved by {got}")
    stalk.check_alive()
    assert stalk.request("/healthcheck").status == 200
    return got


def good_received(task_id, name="hostile.good"):
    return task_event("task-received", task_id, name=name, args="(1,)", kwargs="{}", retries=0,
                      root_id=task_id, parent_id=None, eta=None, expires=None)


def deep(n):
    return "[" * n + "]" * n


CASES = {
    # id: (payload, allowed reasons)
    "not_json": (b"\x00\xffthis is {not json", {"malformed_envelope"}),
    "json_object_not_envelope": (json.dumps({"hello": "world"}), {"malformed_envelope"}),
    "json_array_not_envelope": (json.dumps([1, 2, 3]), {"malformed_envelope"}),
    "json_string_not_envelope": (json.dumps("just a string"), {"malformed_envelope"}),
    "envelope_body_not_string": (json.dumps({"body": 42, "content-type": "application/json",
                                             "content-encoding": "utf-8", "headers": {},
                                             "properties": {"body_encoding": "base64"}}),
                                 {"malformed_envelope"}),
    "bad_base64": (json.dumps({**json.loads(kombu_envelope({})), "body": "!!!! not base64 ~~~"}),
                   {"bad_body_encoding"}),
    "unknown_body_encoding": (kombu_envelope(task_event("task-started", "x"), body_encoding="rot13"),
                              {"bad_body_encoding"}),
    "pickle": (kombu_envelope(pickle.dumps(task_event("task-started", str(uuid.uuid4()))),
                              content_type="application/x-python-serialize"),
               {"unsupported_serializer"}),
    "yaml": (kombu_envelope(b"type: task-started\nuuid: abc\n", content_type="application/x-yaml"),
             {"unsupported_serializer"}),
    "body_not_json": (kombu_envelope(b"{this is not json"), {"malformed_body"}),
    "body_invalid_utf8": (kombu_envelope(b'{"type": "task-started", "uuid": "\xff\xfe"}'),
                          {"malformed_body"}),
    "event_not_object": (kombu_envelope(42), {"not_an_event"}),
    "event_without_type": (kombu_envelope({"uuid": "abc", "hostname": "h@x"}), {"not_an_event"}),
    "event_type_not_string": (kombu_envelope({"type": 5, "uuid": "abc"}), {"not_an_event"}),
    "task_event_without_uuid": (kombu_envelope({k: v for k, v in task_event("task-started", "x").items()
                                                if k != "uuid"}), {"missing_field"}),
    "task_event_uuid_not_string": (kombu_envelope(task_event("task-started", 12345)),
                                   {"missing_field", "not_an_event"}),
    "deeply_nested_body": (kombu_envelope(deep(100_000).encode()), {"malformed_body", "not_an_event"}),
    "deeply_nested_envelope": ('{"body":' * 100_000 + '"x"' + "}" * 100_000, {"malformed_envelope"}),
    "garbage_5mb": (b"\x01" * (5 << 20), {"malformed_envelope", "oversized"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_message_is_counted_and_survived(redis_server, stalk, case):
    payload, reasons = CASES[case]
    publish_expect_rejects(redis_server, stalk, payload, reasons)


def test_worker_event_without_hostname(redis_server, stalk):
    ev = {"type": "worker-heartbeat", "utcoffset": 0, "pid": 1, "clock": 1, "freq": 2.0,
          "active": 0, "processed": 0, "loadavg": [0, 0, 0], "sw_ident": "py-celery",
          "sw_ver": "5.2.6", "sw_sys": "Linux", "timestamp": time.time()}
    publish_expect_rejects(redis_server, stalk, kombu_envelope(ev, routing_key="worker.heartbeat", hostname=None),
                           {"missing_field"}, channel=HEARTBEAT)


def test_list_with_one_good_and_one_bad_event(redis_server, stalk):
    good_id = str(uuid.uuid4())
    bad = {k: v for k, v in task_event("task-started", "x").items() if k != "uuid"}
    ingested = stalk.stats().get("events_ingested")
    publish_expect_rejects(redis_server, stalk, kombu_envelope([good_received(good_id), bad]),
                           {"missing_field"})
    info = wait_for(lambda: stalk.task(good_id), 10, "the good event of the mixed list to be applied")
    assert info["name"] == "hostile.good" and info["state"] == "RECEIVED", info
    assert info["args"] == "(1,)"
    if ingested is not None:
        assert stalk.stats()["events_ingested"] >= ingested + 1

    # The bad one may come first, too, and a non-object element is only that element's problem.
    good2 = str(uuid.uuid4())
    publish_expect_rejects(redis_server, stalk, kombu_envelope([42, good_received(good2)]),
                           {"not_an_event"})
    assert wait_for(lambda: stalk.task(good2), 10, "good event after a bad one in the list")["state"] == "RECEIVED"


def test_five_megabyte_event(redis_server, stalk):
    """A valid event with 5 MB of args: refused as oversized, or applied; never a crash or a hang."""
    big_id = str(uuid.uuid4())
    payload = kombu_envelope(task_event("task-received", big_id, name="hostile.big",
                                        args="'" + "x" * (5 << 20) + "'", kwargs="{}", retries=0))
    before = rejected(stalk).get("oversized", 0)
    assert redis_server.client().publish(TASK_MULTI, payload) >= 1

    def outcome():
        if rejected(stalk).get("oversized", 0) > before:
            return "rejected"
        resp = stalk.request(f"/api/task/info/{big_id}")
        return "applied" if resp.status == 200 else None

    how = wait_for(outcome, 20, "the 5 MB event to be rejected as oversized or applied")
    stalk.check_alive()
    t0 = time.monotonic()
    assert stalk.request("/healthcheck").status == 200
    stalk.tasks(limit=10)
    assert time.monotonic() - t0 < 5, "stalk answers slowly after the 5 MB event"
    print(f"5 MB event was {how}")


def test_still_ingesting_after_all_that(redis_server, stalk):
    task_id = str(uuid.uuid4())
    redis_server.client().publish(TASK_MULTI, kombu_envelope([good_received(task_id, "hostile.after")]))
    info = wait_for(lambda: stalk.task(task_id), 10, "a good event after the hostile ones")
    assert info["name"] == "hostile.after"
    stats = stalk.stats()
    assert stats["broker_connected"] is True
    assert sum(stats["rejected"].values()) > 0, stats
