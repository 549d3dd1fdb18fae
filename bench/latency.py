"""Latency from an event landing in SQS to its signal firing, with default drain settings.

A producer thread sends events one SendMessage at a time at a steady rate
(20 events/s for 30 s; 10 s with ``--quick``) and notes when each call returned.
The drain runs as celery beat schedules it with the default settings: a run
starts every ``drain_interval_s`` (20 s) and keeps a long poll open for
``drain_max_duration_s`` (18 s). A receiver notes when each event's signal
fired. Both clocks are ``time.monotonic`` of this process.

Events sent between two runs wait for the next run, up to
``drain_interval_s - drain_max_duration_s`` seconds, so the figures are given
for all events and for those sent while a run was polling. A second pass sets
``drain_max_duration_s`` equal to ``drain_interval_s``, so that the runs leave
no gap. Target: p99 < 1 s with the defaults.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import (
    BenchContext,
    EventFactory,
    Figure,
    SignalCounter,
    create_queue,
    delete_keys,
    median,
    moto_server,
    percentile,
    sqs_client,
)
from mc_tasks.drain import drain_status_queue
from mc_tasks.settings import Settings

logger = logging.getLogger(__name__)

NAME = "latency"
RATE_PER_S = 20.0
#: Seconds between the first drain run and the first event, so the poll is already open.
PRODUCER_DELAY_S = 0.5
#: Seconds allowed after the last event for the drain to fire the remaining signals.
SETTLE_S = 25.0
P99_TARGET_MS = 1000.0


@dataclass
class Timeline:
    """When each event was sent and fired, and when each drain run polled."""

    sent: dict[str, float] = field(default_factory=dict)
    fired: dict[str, float] = field(default_factory=dict)
    runs: list[tuple[float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_fire(self, event: Any) -> None:
        now = time.monotonic()
        with self.lock:
            self.fired.setdefault(event.event_id, now)

    def latencies_ms(self, *, during_runs_only: bool = False) -> list[float]:
        with self.lock:
            pairs = [(sent, self.fired[event_id]) for event_id, sent in self.sent.items()
                     if event_id in self.fired]
        if during_runs_only:
            pairs = [(sent, fired) for sent, fired in pairs
                     if any(start <= sent < end for start, end in self.runs)]
        return [1000 * (fired - sent) for sent, fired in pairs]


def produce(sqs: Any, queue_url: str, settings: Settings, timeline: Timeline, duration_s: float,
            stop: threading.Event) -> None:
    """Send events at RATE_PER_S for ``duration_s`` seconds, noting when each send returned."""
    factory = EventFactory(settings)
    pending: list[str] = []
    started = time.monotonic()
    count = int(duration_s * RATE_PER_S)
    for index in range(count):
        if stop.is_set():
            return
        delay_s = started + index / RATE_PER_S - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        if not pending:
            pending = factory.job_bodies()
        body = pending.pop(0)
        event_id = json.loads(body)["id"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        with timeline.lock:
            timeline.sent[event_id] = time.monotonic()


def measure(ctx: BenchContext, settings: Settings, duration_s: float) -> dict[str, Any]:
    """Run the producer against beat-scheduled drains of ``settings``; return the latencies."""
    timeline = Timeline()
    stop = threading.Event()
    expected = int(duration_s * RATE_PER_S)

    with moto_server(ctx.log_dir(NAME)), SignalCounter(on_fire=timeline.on_fire):
        sqs = sqs_client()
        queue_url = create_queue(sqs, settings)

        def delayed_producer() -> None:
            time.sleep(PRODUCER_DELAY_S)
            produce(sqs_client(), queue_url, settings, timeline, duration_s, stop)

        producer = threading.Thread(target=delayed_producer, name="latency-producer")
        started = time.monotonic()
        deadline = started + PRODUCER_DELAY_S + duration_s + SETTLE_S
        producer.start()
        try:
            run_index = 0
            while time.monotonic() < deadline:
                with timeline.lock:
                    if len(timeline.fired) >= expected:
                        break
                slot_start = started + run_index * settings.drain_interval_s
                time.sleep(max(0.0, slot_start - time.monotonic()))
                run_start = time.monotonic()
                report = drain_status_queue(settings)
                timeline.runs.append((run_start, time.monotonic()))
                logger.info("Drain run %d: %d received, %d applied in %.1f s", run_index + 1,
                            report.received, report.applied, report.duration_s)
                # A run that ends after its next slot began starts the next one at once,
                # as a beat task queued behind a busy worker does.
                run_index = max(run_index + 1,
                                int((time.monotonic() - started) // settings.drain_interval_s))
        finally:
            stop.set()
            producer.join()

    latencies = timeline.latencies_ms()
    polling = timeline.latencies_ms(during_runs_only=True)
    return {
        "events_sent": len(timeline.sent), "events_fired": len(latencies),
        "missing": len(timeline.sent) - len(latencies),
        "rate_per_s": RATE_PER_S, "duration_s": duration_s,
        "drain_interval_s": settings.drain_interval_s,
        "drain_max_duration_s": settings.drain_max_duration_s,
        "runs": [[round(start - started, 2), round(end - started, 2)]
                 for start, end in timeline.runs],
        "all_p50_ms": round(median(latencies), 1),
        "all_p99_ms": round(percentile(latencies, 0.99), 1),
        "all_max_ms": round(max(latencies, default=float("nan")), 1),
        "sent_while_polling": len(polling),
        "polling_p50_ms": round(median(polling), 1),
        "polling_p99_ms": round(percentile(polling, 0.99), 1),
        "polling_max_ms": round(max(polling, default=float("nan")), 1),
    }


def run(ctx: BenchContext) -> list[Figure]:
    """Measure with the default settings, then with runs that fill the whole interval."""
    duration_s = 10.0 if ctx.quick else 30.0
    defaults = ctx.settings(NAME)
    default_run = measure(ctx, defaults, duration_s)
    full_slot = ctx.settings(NAME, drain_max_duration_s=defaults.drain_interval_s)
    full_slot_run = measure(ctx, full_slot, duration_s)
    delete_keys(f"{ctx.key_prefix}:{NAME}")

    p99_ms = default_run["all_p99_ms"]
    return [
        Figure(NAME, "p50 SendMessage to signal, defaults", "ms", default_run["all_p50_ms"],
               target="(reported)", met=None, details=default_run),
        Figure(NAME, "p99 SendMessage to signal, defaults", "ms", p99_ms,
               target="< 1000 ms", met=p99_ms < P99_TARGET_MS and default_run["missing"] == 0,
               details=default_run),
        Figure(NAME, "p99, defaults, sent while a run polls", "ms",
               default_run["polling_p99_ms"], target="(reported)", met=None,
               details=default_run),
        Figure(NAME, "p99, drain_max_duration_s = drain_interval_s", "ms",
               full_slot_run["all_p99_ms"], target="(reported)", met=None,
               details=full_slot_run),
    ]
