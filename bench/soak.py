#!/usr/bin/python3
# Stalk — Celery monitoring server.
"""Soak benchmark (issue 11): Stalk against a real redis-server for N minutes at R events/s, with
worker churn, periodic /metrics scrapes and API queries. bench/soak.sh is the usual entry point.

What runs (all on 127.0.0.1, each in its own session so each gets its own scheduler autogroup):
  redis-server      private, no persistence, Redis's default client-output-buffer-limit for pubsub
  stalk serve       --max_tasks 100000 --purge_offline_workers 60 --db none (plus STALK_ARGS)
  redis_publisher   the realistic Celery stream of bench/e2e_redis.sh at --rate, for --minutes
  this driver       worker churn: a new hostname comes online every second, heartbeats every 2 s and
                    goes offline after 20 s (so ~20 come and go at any time, 60 an minute); every
                    0.5 s GET /api/tasks?limit=20 and /api/workers; every 5 s GET /metrics; RSS
                    every 2 s

Prints RSS at start, after warm-up and at the end, the RSS slope after warm-up (least squares,
MiB/min), events published vs ingested, and per minute: ingested events/s, RSS, API p50/p99 and
/metrics p99. With --check it exits 1 unless: zero loss (published == ingested, no queue drops, no
reconnects, nothing rejected), slope below --max_slope, every minute's API p99 below --max_p99_ms.
Bounded: the run lasts --minutes plus at most ~3 minutes of start-up and drain, then stops itself.
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import redis


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = cond()
            if value:
                return value
        except Exception:  # noqa: BLE001 - not yet
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: timed out waiting for {what}")
        time.sleep(0.1)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def slope_per_minute(samples):
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if den == 0 else 60 * sum((t - mt) * (v - mv) for t, v in samples) / den


def worker_event(type_, hostname, **fields):
    ev = {"hostname": hostname, "utcoffset": 0, "pid": 4242, "clock": 1, "timestamp": time.time(), "type": type_,
          "freq": 2.0, "sw_ident": "py-celery", "sw_ver": "5.2.6", "sw_sys": "Linux"}
    ev.update(fields)
    return ev


def envelope(event, routing_key):
    body = base64.b64encode(json.dumps(event).encode()).decode()
    return json.dumps({
        "body": body, "content-encoding": "utf-8", "content-type": "application/json",
        "headers": {"hostname": event["hostname"]},
        "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": routing_key},
                       "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())}})


class Churn(threading.Thread):
    """Workers joining and leaving: one new hostname a second, heartbeats every 2 s, offline after 20 s."""

    LIFETIME = 20

    def __init__(self, client, stop):
        super().__init__(daemon=True)
        self.client, self.stop = client, stop
        self.published = 0
        self.joined = 0

    def send(self, type_, hostname, **fields):
        rk = type_.replace("-", ".")
        receivers = self.client.publish(f"/0.celeryev/{rk}", envelope(worker_event(type_, hostname, **fields), rk))
        self.published += 1
        return receivers

    def run(self):
        live = {}  # hostname -> joined at
        next_beat = {}
        while not self.stop.is_set():
            now = time.monotonic()
            host = f"churn-{self.joined}@soak-{os.getpid()}"
            self.joined += 1
            self.send("worker-online", host)
            live[host] = now
            next_beat[host] = now + 2
            for h, joined in list(live.items()):
                if now - joined >= self.LIFETIME:
                    self.send("worker-offline", h)
                    del live[h], next_beat[h]
                elif now >= next_beat[h]:
                    self.send("worker-heartbeat", h, active=0, processed=0, loadavg=[0.1, 0.1, 0.1])
                    next_beat[h] = now + 2
            self.stop.wait(1.0)
        for h in live:
            self.send("worker-offline", h)


class Prober(threading.Thread):
    """API queries every 0.5 s and a /metrics scrape every 5 s; latencies by minute of the run."""

    def __init__(self, base, t0, stop):
        super().__init__(daemon=True)
        self.base, self.t0, self.stop = base, t0, stop
        self.api = {}      # minute -> [seconds]
        self.scrape = {}   # minute -> [seconds]
        self.errors = 0

    def timed(self, path):
        t = time.monotonic()
        with urllib.request.urlopen(self.base + path, timeout=30) as resp:
            resp.read()
        return time.monotonic() - t

    def run(self):
        next_scrape = 0
        paths = ["/api/tasks?limit=20", "/api/workers?status=1"]
        i = 0
        while not self.stop.is_set():
            minute = int((time.monotonic() - self.t0) // 60)
            try:
                self.api.setdefault(minute, []).append(self.timed(paths[i % 2]))
                i += 1
                if time.monotonic() >= next_scrape:
                    self.scrape.setdefault(minute, []).append(self.timed("/metrics"))
                    next_scrape = time.monotonic() + 5
            except Exception:  # noqa: BLE001 - counted; the check fails on errors
                self.errors += 1
            self.stop.wait(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stalk", required=True)
    ap.add_argument("--publisher", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--rate", type=int, default=50000)
    ap.add_argument("--warmup", type=float, default=None, help="seconds (default: a quarter of the run, at most 300)")
    ap.add_argument("--stalk_args", default="--db none")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--max_slope", type=float, default=8.0, help="MiB/min after warm-up (with --check)")
    ap.add_argument("--max_p99_ms", type=float, default=1000.0, help="API p99 per minute (with --check)")
    a = ap.parse_args()
    a.stalk, a.publisher = os.path.abspath(a.stalk), os.path.abspath(a.publisher)  # the children run in a temp dir
    duration = a.minutes * 60
    warmup = a.warmup if a.warmup is not None else min(300.0, duration / 4)

    work = tempfile.mkdtemp(prefix="stalk-soak-")
    procs = []

    def start(cmd, log):
        p = subprocess.Popen(cmd, stdout=open(os.path.join(work, log), "wb"), stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd=work, start_new_session=True)
        procs.append(p)
        return p

    def stop_all():
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()

    try:
        rport, hport = free_port(), free_port()
        rs = start(["redis-server", "--bind", "127.0.0.1", "--port", str(rport), "--save", "", "--appendonly", "no",
                    "--dir", work], "redis.log")
        client = redis.Redis(host="127.0.0.1", port=rport, socket_timeout=10)
        wait_until(client.ping, 10, "redis-server")
        stalk = start([a.stalk, "serve", "--broker", f"redis://127.0.0.1:{rport}/0", "--port", str(hport),
                       "--max_tasks", "100000", "--purge_offline_workers", "60", "--logging", "warning",
                       *a.stalk_args.split()], "stalk.log")
        wait_until(lambda: client.execute_command("PUBSUB", "NUMPAT") >= 1, 20, "Stalk's subscription")
        base = f"http://127.0.0.1:{hport}"

        def stats():
            with urllib.request.urlopen(base + "/api/stalk/stats", timeout=30) as resp:
                return json.loads(resp.read())
        wait_until(stats, 10, "Stalk's API")

        print(f"# soak: {a.minutes:g} min at {a.rate} events/s + worker churn; {os.cpu_count()} cores, "
              f"load {open('/proc/loadavg').read().split()[:3]}; stalk serve --max_tasks 100000 "
              f"--purge_offline_workers 60 {a.stalk_args}", flush=True)
        rss_start = rss_mib(stalk.pid)
        publisher = start([a.publisher, "--port", str(rport), "--rate", str(a.rate), "--duration", str(duration)],
                          "publisher.log")
        t0 = time.monotonic()
        stop = threading.Event()
        churn = Churn(redis.Redis(host="127.0.0.1", port=rport, socket_timeout=10), stop)
        prober = Prober(base, t0, stop)
        churn.start()
        prober.start()
        rss = []  # (seconds, MiB)
        ingested = {}  # minute -> events_ingested at its end
        next_minute = 60
        deadline = t0 + duration + 60
        while publisher.poll() is None and time.monotonic() < deadline:
            if stalk.poll() is not None:
                raise SystemExit(f"soak: stalk exited with {stalk.returncode}")
            t = time.monotonic() - t0
            rss.append((t, rss_mib(stalk.pid)))
            if t >= next_minute:
                ingested[int(next_minute // 60) - 1] = stats()["events_ingested"]
                next_minute += 60
            time.sleep(2)
        stop.set()
        churn.join(10)
        prober.join(35)
        if publisher.poll() is None:
            publisher.kill()
            raise SystemExit("soak: the publisher overran its duration")
        out = open(os.path.join(work, "publisher.log")).read()
        m = re.search(r"published events=(\d+)", out)
        published = int(m.group(1)) + churn.published if m else -1
        # Drain: events_ingested unchanged over 2 s and the ingest queue empty, within 120 s.
        last, stable, st = -1, 0, {}
        drain_deadline = time.monotonic() + 120
        while time.monotonic() < drain_deadline and stable < 4:
            st = stats()
            stable = stable + 1 if st["events_ingested"] == last and st["queue_bytes"] == 0 else 0
            last = st["events_ingested"]
            time.sleep(0.5)
        t_end = time.monotonic() - t0
        ingested.setdefault(int(t_end // 60), st["events_ingested"])
        rss.append((t_end, rss_mib(stalk.pid)))

        after_warmup = [(t, v) for t, v in rss if t >= warmup]
        rss_warm = after_warmup[0][1] if after_warmup else float("nan")
        slope = slope_per_minute(after_warmup)
        lost = published - st["events_ingested"]
        print(f"published {published} events ({churn.published} of them churn: {churn.joined} workers joined), "
              f"ingested {st['events_ingested']}, lost {lost}; queue drops {st['queue_dropped']}, reconnects "
              f"{st['reconnects']}, rejected {st['rejected_total']}, queue high water "
              f"{st['queue_high_water_bytes'] / 1048576:.1f} MiB; workers tracked {st['workers_tracked']}")
        print(f"RSS: start {rss_start:.0f} MiB, after warm-up ({warmup:.0f} s) {rss_warm:.0f} MiB, end {rss[-1][1]:.0f} "
              f"MiB, peak {max(v for _, v in rss):.0f} MiB; slope after warm-up {slope:+.2f} MiB/min")
        print(f"{'minute':>6} {'ingest ev/s':>12} {'rss MiB':>8} {'api p50 ms':>10} {'api p99 ms':>10} "
              f"{'metrics p99':>11}")
        prev = 0
        worst_p99 = 0.0
        for minute in sorted(set(prober.api) | set(ingested)):
            api = prober.api.get(minute, [])
            scrape = prober.scrape.get(minute, [])
            in_minute = [v for t, v in rss if minute * 60 <= t < (minute + 1) * 60]
            rate = (ingested.get(minute, prev) - prev) / 60 if minute in ingested else float("nan")
            prev = ingested.get(minute, prev)
            p99 = percentile(api, 0.99) * 1000
            worst_p99 = max(worst_p99, p99 if api else 0)
            print(f"{minute + 1:>6} {rate:>12.0f} {in_minute[-1] if in_minute else float('nan'):>8.0f} "
                  f"{percentile(api, 0.5) * 1000:>10.1f} {p99:>10.1f} {percentile(scrape, 0.99) * 1000:>11.1f}")
        print(f"load at the end {open('/proc/loadavg').read().split()[:3]}; API errors {prober.errors}", flush=True)

        if a.check:
            failures = []
            if lost != 0 or st["queue_dropped"] != 0 or st["reconnects"] != 0 or st["rejected_total"] != 0:
                failures.append("events were lost, dropped, rejected or the subscriber was cut off")
            if slope > a.max_slope:
                failures.append(f"RSS slope {slope:.2f} MiB/min > {a.max_slope}")
            if worst_p99 > a.max_p99_ms:
                failures.append(f"API p99 {worst_p99:.0f} ms > {a.max_p99_ms:.0f} ms")
            if prober.errors:
                failures.append(f"{prober.errors} API requests failed")
            if failures:
                print("soak: FAILED: " + "; ".join(failures))
                return 1
            print("soak: passed (zero loss, RSS slope and API p99 within bounds)")
        return 0
    finally:
        stop_all()
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    sys.exit(main())
