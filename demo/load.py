"""Steady, bounded demo load: a few tasks a second, mixed, for at most --duration seconds."""
import argparse
import random
import time

from app import add, fail, flaky, sleep

parser = argparse.ArgumentParser()
parser.add_argument("--rate", type=float, default=4.0, help="tasks per second")
parser.add_argument("--duration", type=float, default=3600.0, help="seconds (bounded)")
args = parser.parse_args()

deadline = time.time() + min(args.duration, 4 * 3600)
rnd = random.Random(42)
i = 0
while time.time() < deadline:
    r = rnd.random()
    if r < 0.6:
        add.delay(i, 1)
    elif r < 0.75:
        sleep.delay(round(rnd.uniform(0.2, 3.0), 2))
    elif r < 0.9:
        flaky.delay(i)
    else:
        fail.delay(f"demo failure {i}")
    i += 1
    time.sleep(1.0 / args.rate)
