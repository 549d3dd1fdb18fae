"""Resident memory of a process that drains a long stream of events.

A child process does nothing but drain: it runs
:func:`mc_tasks.drain.drain_status_queue` back to back with the default
settings until it has received the stream, and reads its own ``VmRSS`` and
``VmHWM`` from ``/proc/self/status``. The producer process
(:mod:`bench.producer`) keeps the queue about 20 messages deep, because moto's
server slows down with queue depth.

Growth is measured from the first reading after a warm-up (the first 2,000
events, which load botocore's models and Redis scripts) to the peak (VmHWM)
at the end. Target: at most 20 MB of growth over 100,000 events. The full run
drains 20,000 events to stay within the benchmark's time budget (``--quick``:
5,000; ``--memory-events`` sets another count), and the growth is also
extrapolated linearly to 100,000 events from the RSS readings after warm-up.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    BENCH_REDIS_URL,
    REGION,
    BenchContext,
    Figure,
    SignalCounter,
    child_environment,
    create_queue,
    delete_keys,
    finish_producer,
    moto_server,
    sqs_client,
    start_producer,
)
from mc_tasks.local.stack import ManagedProcess
from mc_tasks.settings import Settings

logger = logging.getLogger(__name__)

NAME = "memory"
TARGET_EVENTS = 100_000
GROWTH_TARGET_MB = 20.0
WARMUP_EVENTS = 2000
QUEUE_DEPTH = 20
#: Seconds the child waits for the next event before it gives up.
IDLE_TIMEOUT_S = 60.0
#: Seconds allowed per 1,000 events before the parent stops the child.
CHILD_TIMEOUT_PER_1000_S = 30.0


def read_status_kb() -> dict[str, int]:
    """Return VmRSS and VmHWM of this process in kB, from /proc/self/status."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


def drain_child(queue_name: str, key_prefix: str, count: int) -> dict[str, Any]:
    """Drain ``count`` events with default settings and return the memory readings."""
    from mc_tasks.drain import drain_status_queue

    settings = Settings(region=REGION, sqs_queue_name=queue_name, redis_url=BENCH_REDIS_URL,
                        redis_key_prefix=key_prefix)
    readings: list[tuple[int, int]] = [(0, read_status_kb()["VmRSS"])]
    received = 0
    warm_rss_kb: int | None = None
    idle_since = time.monotonic()
    with SignalCounter() as counter:
        while received < count:
            limit = min(settings.drain_max_messages, count - received)
            if warm_rss_kb is None:
                limit = min(limit, WARMUP_EVENTS - received)
            report = drain_status_queue(settings, max_messages=limit)
            received += report.received
            if report.received:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_TIMEOUT_S:
                break
            readings.append((received, read_status_kb()["VmRSS"]))
            if warm_rss_kb is None and received >= WARMUP_EVENTS:
                warm_rss_kb = readings[-1][1]
    status = read_status_kb()
    return {"received": received, "signals": counter.count, "warm_rss_kb": warm_rss_kb,
            "final_rss_kb": status["VmRSS"], "peak_rss_kb": status["VmHWM"],
            "readings": readings}


def slope_kb_per_event(readings: Sequence[Sequence[int]]) -> float:
    """Return the least-squares slope of RSS (kB) over events received."""
    points = [(float(events), float(rss)) for events, rss in readings]
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def run(ctx: BenchContext) -> list[Figure]:
    """Drain a stream of events in a child process; return the growth figures."""
    count = ctx.memory_events or (5000 if ctx.quick else 20_000)
    log_dir = ctx.log_dir(NAME)
    settings = ctx.settings(NAME)

    with moto_server(log_dir):
        sqs = sqs_client()
        queue_url = create_queue(sqs, settings)
        output = log_dir / "child.json"
        child = ManagedProcess(
            "memory child",
            [sys.executable, "-m", "bench.memory", "--queue-name", settings.sqs_queue_name,
             "--key-prefix", settings.redis_key_prefix, "--count", str(count),
             "--output", str(output)],
            env=child_environment(), log_path=log_dir / "child.log")
        producer = start_producer(queue_url, count, QUEUE_DEPTH, log_dir / "producer.log")
        started = time.monotonic()
        try:
            child.popen.wait(timeout=60 + CHILD_TIMEOUT_PER_1000_S * count / 1000)
        finally:
            child.stop()
            finish_producer(producer, timeout_s=10)
        elapsed_s = time.monotonic() - started
    delete_keys(f"{ctx.key_prefix}:{NAME}")
    if child.popen.returncode != 0 or not output.exists():
        raise RuntimeError(f"The memory child failed with code {child.popen.returncode}: "
                           f"{child.log_tail()}")
    result = json.loads(output.read_text())
    if result["received"] < count:
        raise RuntimeError(f"The memory child drained {result['received']} of {count} events.")

    warm_kb = result["warm_rss_kb"]
    growth_mb = (result["peak_rss_kb"] - warm_kb) / 1024
    after_warmup = [reading for reading in result["readings"] if reading[0] >= WARMUP_EVENTS]
    slope = slope_kb_per_event(after_warmup)
    projected_mb = growth_mb + max(0.0, slope) * max(0, TARGET_EVENTS - count) / 1024
    details = {
        "events": count, "elapsed_s": round(elapsed_s, 1),
        "events_per_s": round(count / elapsed_s, 1),
        "start_rss_mb": round(result["readings"][0][1] / 1024, 1),
        "warm_rss_mb": round(warm_kb / 1024, 1),
        "final_rss_mb": round(result["final_rss_kb"] / 1024, 1),
        "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
        "slope_kb_per_1000_events": round(slope * 1000, 2),
        "signals": result["signals"],
        "readings_events_rss_kb": result["readings"][:: max(1, len(result["readings"]) // 20)],
    }
    measured = Figure(NAME, f"RSS growth over {count} events", "MB", growth_mb,
                      target=f"<= {GROWTH_TARGET_MB:g} MB",
                      met=growth_mb <= GROWTH_TARGET_MB, details=details)
    if count >= TARGET_EVENTS:
        return [measured]
    measured.met = None
    measured.target = "(measured)"
    return [measured, Figure(
        NAME, f"RSS growth projected to {TARGET_EVENTS} events", "MB", projected_mb,
        target=f"<= {GROWTH_TARGET_MB:g} MB", met=projected_mb <= GROWTH_TARGET_MB,
        note="measured growth plus the post-warm-up slope times the events not drained",
        details=details)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory",
                                     description="Drain events and report memory (child side).")
    parser.add_argument("--queue-name", required=True)
    parser.add_argument("--key-prefix", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    result = drain_child(args.queue_name, args.key_prefix, args.count)
    args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
