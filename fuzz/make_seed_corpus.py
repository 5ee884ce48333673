#!/usr/bin/python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (fuzz/README.md). Re-run after editing; files
that libFuzzer or a person added (crash-*, regression-*) are kept. The events are the payloads
captured from celery 5.2.6 / kombu 5.2.4 in celery-protocol.md §2.1 and §2.3 and tests/unit/data/,
serialized exactly as kombu does: json.dumps with default separators, base64 body."""
import base64
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
DATA = HERE.parent / "tests" / "unit" / "data"
T = 1795655136.91077
U1, U2, U3 = "5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11", "5484a2c1-8f0e-4d3b-9a6c-7e1f2d3c4b5a", "a1c0ffee-0000-4000-8000-000000000003"


def common(host, clock, ts, typ, pid=8466):
    return {"hostname": host, "utcoffset": 0, "pid": pid, "clock": clock, "timestamp": ts, "type": typ}


def ev(typ, clock, uuid=None, host="w1@lab", **fields):
    e = common(host, clock, T + clock / 10, typ)
    if uuid:
        e["uuid"] = uuid
    e.update(fields)
    # Celery puts "timestamp" and "type" last (Event() builds the dict that way).
    return {k: e[k] for k in [k for k in e if k not in ("timestamp", "type")] + ["timestamp", "type"]}


HEARTBEAT = ev("worker-heartbeat", 2, host="w1@lab", freq=2.0, active=0, processed=0, loadavg=[0.53, 0.38, 0.18],
               sw_ident="py-celery", sw_ver="5.2.6", sw_sys="Linux")
BODIES = {
    "worker_online": (ev("worker-online", 1, freq=2.0, active=0, processed=0, loadavg=[0.5, 0.4, 0.2],
                         sw_ident="py-celery", sw_ver="5.2.6", sw_sys="Linux"), "worker.online"),
    "worker_heartbeat_requested": (ev("worker-heartbeat", 3, freq=5, sw_ident="py-celery", sw_ver="5.2.6",
                                      sw_sys="Linux"), "worker.heartbeat"),
    "worker_offline": (ev("worker-offline", 40, freq=2.0, active=0, processed=3, loadavg=[0.1, 0.1, 0.1],
                          sw_ident="py-celery", sw_ver="5.2.6", sw_sys="Linux"), "worker.offline"),
    "task_sent": (ev("task-sent", 1, U1, host="gen8470@api-1", root_id=U1, parent_id=None, name="tasks.add",
                     args="(2, 2)", kwargs="{}", retries=0, eta=None, expires=None, queue="celery", exchange="",
                     routing_key="celery"), "task.sent"),
    "task_received_started": ([ev("task-received", 5, U1, name="tasks.add", args="(2, 2)", kwargs="{}", root_id=U1,
                                  parent_id=None, retries=0, eta=None, expires=None),
                               ev("task-started", 6, U1)], "task.multi"),
    "task_succeeded": ([ev("task-succeeded", 7, U1, result="4", runtime=0.002134907990694046)], "task.multi"),
    "task_failed_traceback": ([ev("task-failed", 8, U2, exception="ValueError('kaboom')",
                                  traceback="Traceback (most recent call last):\n  File \"/srv/tasks.py\", "
                                            "line 9, in fail\n    raise ValueError('kaboom')\nValueError: kaboom\n")],
                              "task.multi"),
    "task_retried_received": ([ev("task-retried", 9, U3, exception="RuntimeError('transient')", traceback="..."),
                               ev("task-received", 10, U3, name="tasks.flaky", args="()", kwargs="{}", retries=1,
                                  root_id=U3, parent_id=U3, eta="2026-11-25T10:00:00.000000+00:00",
                                  expires=None)], "task.multi"),
    "task_revoked_expired": ([ev("task-revoked", 11, U2, terminated=False, signum=None, expired=True)], "task.multi"),
    "task_revoked_terminated": ([ev("task-revoked", 12, U3, terminated=True, signum=9, expired=False)],
                                "task.multi"),
    "task_rejected": ([ev("task-rejected", 13, U1, requeue=False)], "task.multi"),
    "task_custom_progress": (ev("task-progress", 14, U1, current=5, total=10), "task.progress"),
    "task_unicode": ([ev("task-received", 15, "my-custom-id", name="proj.emails.send",
                         args="('h\u00e9llo \u2713 \U0001F600',)", kwargs="{'to': 'x@example.com'}", retries=0)],
                     "task.multi"),
    "task_result_not_string": ([ev("task-succeeded", 16, U2, result=[1, {"a": None}], runtime=1)], "task.multi"),
    "empty_list": ([], "task.multi"),
    "custom_app_event": (ev("myapp-deploy", 17, version="1.2.3"), "myapp.deploy"),
}


def envelope(body_text, routing_key, host="w1@lab", content_type="application/json", body_encoding="base64",
             body_first=True):
    body = base64.b64encode(body_text.encode()).decode() if body_encoding == "base64" else body_text
    props = {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
             "priority": 0}
    if body_encoding is not None:
        props["body_encoding"] = body_encoding
    props["delivery_tag"] = "b2ca68c8-bdca-4ca5-ae77-f0e35592f7f1"
    env = {"body": body, "content-encoding": "utf-8", "content-type": content_type,
           "headers": {"hostname": host}, "properties": props}
    if not body_first:
        env = {k: env[k] for k in ["headers", "properties", "content-type", "content-encoding", "body"]}
    return json.dumps(env)


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data.encode() if isinstance(data, str) else data)


def main():
    for f in ["redis_worker_heartbeat.json", "redis_task_multi.json"]:
        write("fuzz_envelope", "captured_" + f.replace(".json", ""), (DATA / f).read_text().rstrip("\n"))
    write("fuzz_body", "captured_amqp_task_multi", (DATA / "amqp_task_multi_body.json").read_text().rstrip("\n"))
    write("fuzz_body", "captured_heartbeat", json.dumps(HEARTBEAT))
    for name, (body, key) in BODIES.items():
        text = json.dumps(body)
        write("fuzz_body", name, text)
        write("fuzz_envelope", name, envelope(text, key))
    text = json.dumps(BODIES["task_received_started"][0])
    write("fuzz_envelope", "utf8_body_no_encoding", envelope(text, "task.multi", body_encoding=None))
    write("fuzz_envelope", "body_last_key_order", envelope(text, "task.multi", body_first=False))
    write("fuzz_envelope", "pickle_serializer", envelope("\x80\x04\x95...", "task.multi",
                                                          content_type="application/x-python-serialize"))
    write("fuzz_envelope", "unknown_body_encoding", envelope(text, "task.multi", body_encoding="hex"))

    http = {
        "tasks_filtered": "GET /api/tasks?limit=10&offset=1&sort_by=-received&state=SUCCESS&workername=w1%40lab"
                          "&taskname=proj.tasks.add HTTP/1.1\nHost: 127.0.0.1\n\n",
        "tasks_search": "GET /api/tasks?search=args%3A2+kwargs%3Atenant%3Dacme+result%3A4+state%3AFAILURE+free"
                        "&received_start=2026-11-25+10%3A00&received_end=1795655200 HTTP/1.1\n\n",
        "tasks_sorted_name": "GET /api/tasks?sort_by=name&limit=0 HTTP/1.1\n\n",
        "task_info": "GET /api/task/info/5397a7f2-3c5e-4f0e-9a47-0b1a3c9e1d11 HTTP/1.1\n\n",
        "task_info_text_id": "GET /api/task/info/my-custom-task-id HTTP/1.1\n\n",
        "task_info_unknown": "GET /api/task/info/%E2%9C%93%00 HTTP/1.1\n\n",
        "task_types": "GET /api/task/types HTTP/1.1\n\n",
        "workers": "GET /api/workers HTTP/1.1\n\n",
        "workers_status": "GET /api/workers?status=1&workername=w2%40lab HTTP/1.1\n\n",
        "workers_refresh": "GET /api/workers?refresh=1&workername=w1@lab HTTP/1.1\n\n",
        "workers_unknown": "GET /api/workers?workername=nobody HTTP/1.1\n\n",
        "queues_length": "GET /api/queues/length HTTP/1.1\n\n",
        "healthcheck": "HEAD /healthcheck HTTP/1.1\n\n",
        "stats": "GET /api/stalk/stats/ HTTP/1.1\n\n",
        "metrics_openmetrics": "GET /metrics HTTP/1.1\nAccept: application/openmetrics-text; version=1.0.0\n\n",
        "post_to_get_route": "POST /api/tasks HTTP/1.1\nContent-Type: application/json\n\n{\"limit\": 1}",
        "unknown_path": "GET /../../etc/passwd?%zz=%4 HTTP/1.1\nCookie: a=b; c=d\n\n",
    }
    for name, text in http.items():
        write("fuzz_http", name, text)

    urls = {
        "redis_default": "redis://",
        "redis_full": "redis://user:p%40ss%3Aword@redis.example.com:6380/3",
        "redis_password_only": "redis://:secret@127.0.0.1:6379/0",
        "redis_password_no_colon": "redis://secret@localhost/1",
        "rediss": "rediss://:pw@host:6390/2?ssl_cert_reqs=required",
        "ipv6": "redis://[::1]:6379/0",
        "unix_kombu": "redis+socket:///var/run/redis/redis.sock?virtual_host=4",
        "unix_db": "unix:///tmp/redis.sock?db=2",
        "amqp": "amqp://guest:guest@rabbit:5672/vhost%2Fx",
        "pyamqp": "pyamqp://localhost//",
        "bad_port": "redis://host:99999/0",
        "no_scheme": "localhost:6379",
    }
    for name, text in urls.items():
        write("fuzz_broker_url", name, text)

    # limit, offset, sort_by, workername, taskname, state, received_start, received_end, started_start,
    # started_end, then the search text.
    queries = {
        "all": "\n\n\n\n\n\n\n\n\n\n",
        "page": "2\n1\n\n\n\n\n\n\n\n\n",
        "sorted_received": "0\n0\n-received\n\n\n\n\n\n\n\n",
        "sorted_name_state": "5\n0\nname\nAll\nAll\nAll\n\n\n\n\n",
        "filters": "10\n0\nstarted\nw1@lab\nproj.tasks.add\nSUCCESS\n2026-11-25 10:00\n1795655200\n\n\n",
        "custom_state": "\n\nstate\n\n\nPROGRESS\n\n\n1795655100\n1795655300\n",
        "search_terms": "\n\nruntime\n\n\n\n\n\n\n\nargs:2 kwargs:tenant=acme result:4 state:FAILURE \"quoted term\" free",
        "huge_offset": "18446744073709551615\n18446744073709551615\ntimestamp\n\n\n\n\n\n\n\n",
        "bad_sort": "1\n0\nbogus\n\n\n\n\n\n\n\n",
    }
    for name, text in queries.items():
        write("fuzz_task_query", name, text)

    # Raw RESP as Redis pushes it to a subscriber (PSUBSCRIBE /0.celeryev/*).
    def bulk(b):
        b = b.encode() if isinstance(b, str) else b
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def pmessage(channel, payload):
        return b"*4\r\n" + bulk("pmessage") + bulk("/0.celeryev/*") + bulk(channel) + bulk(payload)

    heartbeat = (DATA / "redis_worker_heartbeat.json").read_text().rstrip("\n")
    multi = (DATA / "redis_task_multi.json").read_text().rstrip("\n")
    resp = {
        "pmessage_heartbeat": pmessage("/0.celeryev/worker.heartbeat", heartbeat),
        "pmessage_task_multi_then_more": pmessage("/0.celeryev/task.multi", multi) + pmessage("/0.celeryev/task.sent", "{}"),
        "pmessage_empty_payload": pmessage("/0.celeryev/task.sent", ""),
        "pmessage_partial": pmessage("/0.celeryev/task.multi", multi)[:300],
        "psubscribe_confirmations": b"*3\r\n" + bulk("psubscribe") + bulk("/0.celeryev/*") + b":1\r\n"
                                    + b"*3\r\n" + bulk("psubscribe") + bulk("/0.celeryev") + b":2\r\n",
        "pong_then_pmessage": b"*2\r\n" + bulk("pong") + bulk("") + pmessage("/0.celeryev/worker.online", "x"),
        "error_reply": b"-ERR unknown command\r\n",
    }
    for name, data in resp.items():
        write("fuzz_resp", name, data)


if __name__ == "__main__":
    main()
