"""Queue lengths on Redis: /api/queues/length sums LLEN of the queue list and of its priority
sub-lists "<queue>\\x06\\x16<step>" for steps 3, 6, 9 (celery-protocol.md §4.1, as kombu and Flower do).

No worker runs in this module, so the messages stay in the lists.
"""
from harness import wait_until

SEP = b"\x06\x16"


def queue_lengths(stalk):
    body = stalk.get_json("/api/queues/length")
    assert set(body) == {"active_queues"}, body
    assert isinstance(body["active_queues"], list), body
    for entry in body["active_queues"]:
        assert isinstance(entry.get("name"), str) and isinstance(entry.get("messages"), int), entry
    return {e["name"]: e["messages"] for e in body["active_queues"]}


def test_default_queue_listed_when_empty(stalk):
    assert queue_lengths(stalk).get("celery") == 0


def test_queue_length_sums_priority_sublists(redis_server, stalk, celery_app):
    add = celery_app.tasks["app.add"]
    r = redis_server.client()
    for i in range(3):
        add.apply_async((i, i), queue="celery")
    for i in range(2):
        add.apply_async((i, i), queue="celery", priority=5)   # step 3
    add.apply_async((9, 9), queue="celery", priority=9)       # step 9

    # The test's own premise: kombu put them where §4.1 says.
    assert r.llen(b"celery") == 3
    assert r.llen(b"celery" + SEP + b"3") == 2
    assert r.llen(b"celery" + SEP + b"9") == 1

    wait_until(lambda: queue_lengths(stalk), lambda q: q.get("celery") == 6, 10,
             "/api/queues/length to report 6 messages in 'celery' (3 + 2 at priority 5 + 1 at 9)")

    # It follows the lists (not a number cached at first sight).
    r.rpop(b"celery")
    r.rpop(b"celery" + SEP + b"3")
    wait_until(lambda: queue_lengths(stalk), lambda q: q.get("celery") == 4, 10, "'celery' back to 4 after two pops")
    r.delete(b"celery", b"celery" + SEP + b"3", b"celery" + SEP + b"9")
    wait_until(lambda: queue_lengths(stalk), lambda q: q.get("celery") == 0, 10, "'celery' back to 0 once emptied")
