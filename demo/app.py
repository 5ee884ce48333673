"""Sample Celery app for `scripts/demo.sh`: tasks that succeed, fail, retry and sleep.

Broker and result backend: env BROKER_URL (default redis://127.0.0.1:6390/0). Events are on
(worker_send_task_events, task_send_sent_event), which is what a monitor needs.
"""
import os
import random
import time

from celery import Celery

BROKER_URL = os.environ.get("BROKER_URL", "redis://127.0.0.1:6390/0")

app = Celery("demo", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    worker_send_task_events=True,
    task_send_sent_event=True,
    result_expires=600,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.task(name="demo.add")
def add(x, y):
    return x + y


@app.task(name="demo.sleep")
def sleep(seconds):
    time.sleep(float(seconds))
    return seconds


@app.task(name="demo.fail")
def fail(msg="demo failure"):
    raise ValueError(msg)


@app.task(name="demo.flaky", bind=True, max_retries=2)
def flaky(self, x=0):
    if self.request.retries < 1 and random.random() < 0.7:
        raise self.retry(exc=RuntimeError("transient error, retrying"), countdown=1)
    return x
