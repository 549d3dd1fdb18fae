"""Drain rate of two worker processes against one, on the same stream of events.

Each run gets a new queue, a producer process (:mod:`bench.producer`) that
keeps it about 30 messages deep until it has sent the run's events, and 1 or
2 worker processes. A worker runs :func:`mc_tasks.drain.drain_status_queue`
back to back (1 s runs, as short beat slots) and stops after two runs that
received nothing. The workers start, load their clients, then wait for a go
file, so start-up is not timed. The run's time is from go to the last signal
fired by any worker. Two workers may receive a job's events out of order, so
a few progress events arrive after COMPLETE and are handled as stale, with no
signal; every event must be handled. moto's server CPU over that time comes
from ``/proc/<pid>/stat``. Runs with 1 and 2 workers alternate.

Target: 2 workers at least 1.7x the events/s of 1. moto's server is one
Python process, so when it already uses a whole core with one worker, more
workers cannot go faster; the figure's details show its busy share.

A second figure repeats the runs with receivers that wait
:data:`RECEIVER_WAIT_MS` per signal, as a host's database write would. Then a
worker spends most of its time in receivers rather than waiting for moto, which
shows how the drain itself scales while moto is not yet saturated.
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
    busy_cores,
    child_environment,
    create_queue,
    delete_keys,
    finish_producer,
    machine_cpu_ticks,
    median,
    moto_server,
    process_cpu_s,
    ratio_figure,
    sqs_client,
    start_producer,
)
from mc_tasks.local.stack import ManagedProcess
from mc_tasks.settings import Settings

logger = logging.getLogger(__name__)

NAME = "scale"
QUEUE_DEPTH = 30
#: Seconds of one drain run in a worker.
WORKER_RUN_S = 1.0
#: Consecutive empty runs after which a worker stops.
EMPTY_RUNS_TO_STOP = 2
#: Seconds a worker waits for the go file or the parent waits for a ready file.
START_TIMEOUT_S = 60.0
#: Seconds between two readings of moto's and the machine's CPU during a run.
SAMPLE_INTERVAL_S = 0.1
#: Seconds allowed per 1,000 events before the parent stops the workers.
RUN_TIMEOUT_PER_1000_S = 60.0
#: Milliseconds each signal's receiver waits in the second figure's runs.
RECEIVER_WAIT_MS = 3.0


def worker(queue_name: str, key_prefix: str, ready: Path, go: Path, output: Path,
           receiver_wait_ms: float = 0.0) -> None:
    """Drain until the queue stays empty, after ``go`` exists; write counts and times.

    Each signal's receiver waits ``receiver_wait_ms`` milliseconds.
    """
    from mc_tasks.clients import get_client
    from mc_tasks.drain import drain_status_queue
    from mc_tasks.store import JobStore

    settings = Settings(region=REGION, sqs_queue_name=queue_name, redis_url=BENCH_REDIS_URL,
                        redis_key_prefix=key_prefix)
    store = JobStore(settings)
    store.redis.ping()
    get_client("sqs", settings).get_queue_url(QueueName=queue_name)
    last_fired = [0.0]

    def note(event: Any) -> None:
        if receiver_wait_ms:
            time.sleep(receiver_wait_ms / 1000)
        last_fired[0] = time.time()

    ready.touch()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not go.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"worker: no go file {go} after {START_TIMEOUT_S:g} s")
        time.sleep(0.005)

    received = applied = handled = empty_runs = 0
    cpu_start = time.process_time()
    with SignalCounter(on_fire=note):
        while empty_runs < EMPTY_RUNS_TO_STOP:
            report = drain_status_queue(settings, max_duration_s=WORKER_RUN_S, store=store)
            received += report.received
            applied += report.applied
            handled += report.applied + report.stale + report.duplicates
            empty_runs = 0 if report.received else empty_runs + 1
    output.write_text(json.dumps({"received": received, "applied": applied, "handled": handled,
                                  "last_fired": last_fired[0],
                                  "cpu_s": time.process_time() - cpu_start}))


def run_workers(ctx: BenchContext, workers: int, events: int, moto_pid: int,
                receiver_wait_ms: float = 0.0) -> dict[str, Any]:
    """Drain ``events`` with ``workers`` processes; return the rate and server load."""
    settings = ctx.settings(NAME)
    log_dir = ctx.log_dir(NAME) / settings.sqs_queue_name
    log_dir.mkdir()
    sqs = sqs_client()
    queue_url = create_queue(sqs, settings)
    go = log_dir / "go"
    processes = []
    for index in range(workers):
        processes.append(ManagedProcess(
            f"drain worker {index}",
            [sys.executable, "-m", "bench.scale", "--queue-name", settings.sqs_queue_name,
             "--key-prefix", settings.redis_key_prefix, "--ready", str(log_dir / f"ready{index}"),
             "--go", str(go), "--output", str(log_dir / f"worker{index}.json"),
             "--receiver-wait-ms", str(receiver_wait_ms)],
            env=child_environment(), log_path=log_dir / f"worker{index}.log"))
    producer = None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all((log_dir / f"ready{index}").exists() for index in range(workers)):
            if time.monotonic() > deadline or not all(p.running() for p in processes):
                raise RuntimeError(f"Drain workers did not start: {processes[0].log_tail()}")
            time.sleep(0.05)
        producer = start_producer(queue_url, events, QUEUE_DEPTH, log_dir / "producer.log")
        # Load readings every SAMPLE_INTERVAL_S, so the workers' idle tail after
        # the last event can be left out.
        samples = [(time.time(), process_cpu_s(moto_pid), machine_cpu_ticks())]
        go_at = samples[0][0]
        go.touch()
        deadline = time.monotonic() + 30 + RUN_TIMEOUT_PER_1000_S * events / 1000
        while any(process.running() for process in processes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{workers} drain workers did not finish {events} events.")
            time.sleep(SAMPLE_INTERVAL_S)
            samples.append((time.time(), process_cpu_s(moto_pid), machine_cpu_ticks()))
    finally:
        for process in processes:
            process.stop()
        if producer is not None:
            finish_producer(producer, timeout_s=10)
    sqs.delete_queue(QueueUrl=queue_url)

    results = [json.loads((log_dir / f"worker{index}.json").read_text())
               for index in range(workers)]
    handled = sum(result["handled"] for result in results)
    if handled != events:
        raise RuntimeError(f"{workers} workers handled {handled} of {events} events.")
    last_fired = max(result["last_fired"] for result in results)
    wall_s = last_fired - go_at
    end = max((sample for sample in samples if sample[0] <= last_fired + SAMPLE_INTERVAL_S),
              key=lambda sample: sample[0])
    sampled_s = end[0] - go_at
    server_cpu_s = end[1] - samples[0][1]
    machine_busy = busy_cores(samples[0][2], end[2])
    return {"workers": workers, "events_per_s": events / wall_s, "wall_s": wall_s,
            "moto_busy_share_of_one_core": server_cpu_s / sampled_s if sampled_s else 0.0,
            "machine_busy_cores": machine_busy,
            "worker_cpu_ms_per_event": 1000 * sum(r["cpu_s"] for r in results) / events,
            "per_worker_received": [result["received"] for result in results],
            "applied": sum(result["applied"] for result in results)}


def run(ctx: BenchContext) -> list[Figure]:
    """Alternate runs with one and two workers; return the two rate ratio figures."""
    events = 1000 if ctx.quick else 3000
    rounds = 2 if ctx.quick else 3
    figures = []
    with moto_server(ctx.log_dir(NAME)) as (moto, _):
        for receiver_wait_ms, metric in ((0.0, "2 workers vs 1 worker"),
                                         (RECEIVER_WAIT_MS, f"2 workers vs 1 worker, "
                                          f"receivers waiting {RECEIVER_WAIT_MS:g} ms")):
            one, two = _alternate(ctx, events, rounds, moto.pid, receiver_wait_ms)
            figures.append(ratio_figure(
                NAME, metric, "events/s", [r["events_per_s"] for r in two],
                [r["events_per_s"] for r in one], target=">= 1.7x",
                check=lambda ratio: ratio >= 1.7,
                details={"events_per_run": events, "rounds": rounds,
                         "queue_depth": QUEUE_DEPTH, "receiver_wait_ms": receiver_wait_ms,
                         "one_worker": _summary(one), "two_workers": _summary(two)}))
    delete_keys(f"{ctx.key_prefix}:{NAME}")
    return figures


def _alternate(ctx: BenchContext, events: int, rounds: int, moto_pid: int,
               receiver_wait_ms: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``rounds`` rounds of one and of two workers, alternating which goes first."""
    one: list[dict[str, Any]] = []
    two: list[dict[str, Any]] = []
    for index in range(rounds):
        order = [(1, one), (2, two)] if index % 2 == 0 else [(2, two), (1, one)]
        for workers, results in order:
            results.append(run_workers(ctx, workers, events, moto_pid, receiver_wait_ms))
        logger.info("Round %d, receivers waiting %g ms: 1 worker %.0f events/s (moto %.0f%% "
                    "busy), 2 workers %.0f events/s (moto %.0f%% busy)", index + 1,
                    receiver_wait_ms, one[-1]["events_per_s"],
                    100 * one[-1]["moto_busy_share_of_one_core"], two[-1]["events_per_s"],
                    100 * two[-1]["moto_busy_share_of_one_core"])
    return one, two


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "events_per_s": round(median([r["events_per_s"] for r in results]), 1),
        "moto_busy_share_of_one_core": round(
            median([r["moto_busy_share_of_one_core"] for r in results]), 2),
        "machine_busy_cores": round(median([r["machine_busy_cores"] for r in results]), 2),
        "worker_cpu_ms_per_event": round(
            median([r["worker_cpu_ms_per_event"] for r in results]), 3),
        "per_worker_received": [r["per_worker_received"] for r in results],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale",
                                     description="One drain worker of the scale benchmark.")
    parser.add_argument("--queue-name", required=True)
    parser.add_argument("--key-prefix", required=True)
    parser.add_argument("--ready", type=Path, required=True)
    parser.add_argument("--go", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--receiver-wait-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    worker(args.queue_name, args.key_prefix, args.ready, args.go, args.output,
           args.receiver_wait_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
