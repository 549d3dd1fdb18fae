"""Drain throughput and client CPU per event, against a minimal loop and a naive one.

Subject: :func:`mc_tasks.drain.drain_status_queue` on a backlog of valid
events of this application's jobs, which it parses, applies to Redis and fires
signals for (a trivial receiver counts them).

Baselines on the same moto server, in the same run, alternating with the subject:

- minimal: one cached boto3 client, ReceiveMessage of 10 with a 20 s long poll,
  DeleteMessageBatch, and nothing else. Targets: the subject reaches at least
  0.9x its events/s and at most 1.2x its client CPU per event.
- naive: a new boto3 client for every call, one message per ReceiveMessage and
  one DeleteMessage per message. Each event is handled the same way as by the
  drain (parse, store, signal). Target: the subject is at least 10x as fast.

CPU is ``time.process_time`` of this process, in which only the measured loop
runs, because moto's server is another process.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3

from bench.common import (
    REGION,
    BenchContext,
    Figure,
    Sample,
    SignalCounter,
    create_queue,
    delete_keys,
    finish_producer,
    median,
    moto_server,
    ratio_figure,
    sqs_client,
    start_producer,
    timed,
)
from mc_tasks.dispatch import handle_event
from mc_tasks.drain import drain_status_queue
from mc_tasks.events import discard_reason, parse_message
from mc_tasks.local.stack import ManagedProcess
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore

logger = logging.getLogger(__name__)

NAME = "drain_throughput"
#: Long poll of the minimal loop, the SQS maximum.
MINIMAL_WAIT_TIME_S = 20
#: Upper bound of one drain run, far above what a backlog needs. The message count ends it.
DRAIN_BOUND_S = 300.0
#: Messages the producer keeps in the queue while a loop drains it (see bench.producer).
QUEUE_DEPTH = 20


def minimal_loop(sqs: Any, queue_url: str, count: int) -> int:
    """Receive and delete ``count`` messages, ten at a time; return how many were received."""
    received = 0
    while received < count:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=MINIMAL_WAIT_TIME_S)
        messages = response.get("Messages", [])
        if not messages:
            break
        received += len(messages)
        entries = [{"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                   for index, message in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    return received


def naive_loop(settings: Settings, store: JobStore, queue_url: str, count: int) -> int:
    """Drain the way often seen in the wild: a new client per call, one message at a time."""
    received = 0
    while received < count:
        response = boto3.client("sqs", region_name=REGION).receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=MINIMAL_WAIT_TIME_S)
        messages = response.get("Messages", [])
        if not messages:
            break
        message = messages[0]
        received += 1
        event = parse_message(message["Body"])
        if discard_reason(event, settings) is None:
            handle_event(store, event, sender="bench.naive")
        boto3.client("sqs", region_name=REGION).delete_message(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return received


def server_load(samples: list[Sample]) -> dict[str, float]:
    """Return medians of moto's CPU per event, its busy share of one core and client CPU."""
    return {
        "moto_cpu_ms_per_event": round(median([s.server_cpu_per_item_ms for s in samples]), 3),
        "moto_busy_share_of_one_core": round(median([s.server_busy for s in samples]), 2),
        "client_cpu_ms_per_event": round(median([s.cpu_per_item_ms for s in samples]), 3),
    }


def run(ctx: BenchContext) -> list[Figure]:
    """Measure the drain against both baselines; return the three figures."""
    events = 1000 if ctx.quick else 2000
    naive_events = 100 if ctx.quick else 200
    rounds = 3 if ctx.quick else 5
    subject: list[Sample] = []
    minimal: list[Sample] = []
    naive: list[Sample] = []

    with moto_server(ctx.log_dir(NAME)) as (moto, _), SignalCounter() as counter:
        sqs = sqs_client()

        def backlog(size: int) -> tuple[Settings, str, ManagedProcess]:
            settings = ctx.settings(NAME)
            url = create_queue(sqs, settings)
            log_path = ctx.log_dir(NAME) / f"producer-{settings.sqs_queue_name}.log"
            return settings, url, start_producer(url, size, QUEUE_DEPTH, log_path)

        def finish(url: str, producer: ManagedProcess) -> None:
            finish_producer(producer)
            sqs.delete_queue(QueueUrl=url)

        def run_subject(size: int) -> Sample:
            settings, url, producer = backlog(size)
            store = JobStore(settings)
            fired_before = counter.count
            sample = timed(lambda: drain_status_queue(
                settings, max_duration_s=DRAIN_BOUND_S, max_messages=size, store=store).applied,
                moto.pid)
            fired = counter.count - fired_before
            if sample.items != size or fired != size:
                raise RuntimeError(f"The drain applied {sample.items} and fired {fired} of "
                                   f"{size} events; every event must be applied once.")
            finish(url, producer)
            return sample

        def run_minimal(size: int) -> Sample:
            _, url, producer = backlog(size)
            sample = timed(lambda: minimal_loop(sqs, url, size), moto.pid)
            finish(url, producer)
            return sample

        def run_naive(size: int) -> Sample:
            settings, url, producer = backlog(size)
            store = JobStore(settings)
            sample = timed(lambda: naive_loop(settings, store, url, size), moto.pid)
            finish(url, producer)
            return sample

        # Warm-up: clients, botocore models and Redis scripts are loaded once per process.
        run_subject(100)
        run_minimal(100)
        for index in range(rounds):
            order = [(run_minimal, minimal), (run_subject, subject)]
            if index % 2:
                order.reverse()
            for runner, samples in order:
                samples.append(runner(events))
            naive.append(run_naive(naive_events))
            logger.info("Round %d: drain %.0f events/s, minimal %.0f events/s, naive %.0f "
                        "events/s", index + 1, subject[-1].rate_per_s, minimal[-1].rate_per_s,
                        naive[-1].rate_per_s)
    delete_keys(f"{ctx.key_prefix}:{NAME}")

    sizes = {"events_per_round": events, "naive_events_per_round": naive_events,
             "rounds": rounds, "queue_depth": QUEUE_DEPTH}
    servers = {name: server_load(samples) for name, samples in
               (("drain", subject), ("minimal", minimal), ("naive", naive))}
    return [
        ratio_figure(NAME, "throughput vs minimal loop", "events/s",
                     [s.rate_per_s for s in subject], [s.rate_per_s for s in minimal],
                     target=">= 0.9x", check=lambda ratio: ratio >= 0.9,
                     details={**sizes, "servers": servers}),
        ratio_figure(NAME, "client CPU per event vs minimal loop", "ms/event",
                     [s.cpu_per_item_ms for s in subject], [s.cpu_per_item_ms for s in minimal],
                     target="<= 1.2x", check=lambda ratio: ratio <= 1.2, details=sizes),
        ratio_figure(NAME, "throughput vs naive loop", "events/s",
                     [s.rate_per_s for s in subject], [s.rate_per_s for s in naive],
                     target=">= 10x", check=lambda ratio: ratio >= 10,
                     details={**sizes, "servers": servers},
                     note="moto's server caps the drain's rate; see details.servers"),
    ]
