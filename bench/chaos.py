"""Chaos check of the event path: drain worker processes SIGKILLed mid-batch.

Run from the repository root (a real Redis must listen on 127.0.0.1:6379)::

    python -m bench.chaos [--events N] [--kills K] [--workers W]

What one run does:

- Builds N job state change events for N/20 jobs (PROGRESSING,
  INPUT_INFORMATION, STATUS_UPDATEs, one final COMPLETE, ERROR or CANCELED
  each), adds 20 % exact duplicates (same event id) and shuffles them.
- Starts moto's server on 127.0.0.1 with an SQS queue (short visibility
  timeout) and a dead-letter queue (redrive after ``MAX_RECEIVE_COUNT``
  receives), and W drain worker processes (``--worker``, a loop around
  :func:`mc_tasks.drain.drain_status_queue`) that share Redis under one key
  prefix. Signal receivers in the workers append every fired signal to a Redis
  list.
- Sends the messages with a paced producer that keeps at most
  ``MAX_VISIBLE_MESSAGES`` visible in the queue, because moto's server slows
  down with queue depth. K times during sending it SIGKILLs one worker by its
  PID right after that worker fired a signal (so it is mid-batch), and starts a
  replacement.
- Waits until the queue is empty, stops the workers, checks the fired signals
  and the store, prints the results and deletes its Redis keys.

The checks are in :mod:`bench.chaos_check`. The drain's documented limit: a
worker killed after a receiver ran but before the event's lease was released
fires that signal again once the lease expires. Such a repeat is counted apart
from unexplained repeats, and each kill can cause at most one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import redis

from bench.chaos_check import ChaosResult, ChaosRun, chaos_keys, check_run, generate_events
from bench.chaos_worker import Killer, WorkerPool, run_worker
from mc_tasks.local.stack import FAKE_AWS_ENVIRONMENT, start_moto_server
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

DEFAULT_EVENTS = 10_000
DEFAULT_WORKERS = 4
DEFAULT_KILLS = 6
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
#: Queue visibility timeout and store lease in seconds; short, so a killed worker's
#: messages return fast.
DEFAULT_VISIBILITY_TIMEOUT_S = 5
#: Seconds the whole run may take before it gives up and reports what it has.
DEFAULT_TIMEOUT_S = 900.0
#: Receives before SQS moves a message to the dead-letter queue. High, because a
#: message of a killed worker is received again while its lease still runs.
MAX_RECEIVE_COUNT = 100
#: Visible messages the producer allows in the queue before it waits.
MAX_VISIBLE_MESSAGES = 200
#: Seconds one drain run of a worker lasts; a worker checks for the stop key between runs.
WORKER_DRAIN_DURATION_S = 1.0
#: Seconds the queue must stay empty before the run counts as drained.
EMPTY_QUEUE_CONFIRM_S = 1.0
REGION = "us-east-1"


@dataclass(frozen=True)
class ChaosConfig:
    """Parameters of one chaos run."""

    events: int = DEFAULT_EVENTS
    workers: int = DEFAULT_WORKERS
    kills: int = DEFAULT_KILLS
    visibility_timeout_s: int = DEFAULT_VISIBILITY_TIMEOUT_S
    redis_url: str = DEFAULT_REDIS_URL
    timeout_s: float = DEFAULT_TIMEOUT_S
    #: Milliseconds each receiver sleeps after recording, to widen the kill-in-receiver window.
    receiver_delay_ms: float = 0.0
    seed: int = 20240611
    #: Folder for the moto and worker logs; a temporary folder (deleted afterwards) when None.
    log_dir: Path | None = None


def run_chaos(config: ChaosConfig, *, prefix: str | None = None) -> ChaosResult:
    """Run one chaos check and return its result; Redis keys under ``prefix`` are deleted after.

    Raises ValueError on invalid parameters. Every process it starts is stopped
    before it returns, also on error.
    """
    _validate(config)
    prefix = prefix or f"mc_tasks_chaos:{uuid.uuid4().hex[:12]}"
    with _log_folder(config.log_dir) as log_dir:
        moto, moto_url = start_moto_server(log_dir, env=_clean_env(FAKE_AWS_ENVIRONMENT))
        try:
            return _run(config, prefix, moto_url, log_dir)
        finally:
            moto.stop()
            _delete_keys(config.redis_url, prefix)


def _run(config: ChaosConfig, prefix: str, moto_url: str, log_dir: Path) -> ChaosResult:
    started = time.monotonic()
    deadline = started + config.timeout_s
    rng = random.Random(config.seed)
    plan = generate_events(config.events, rng)
    queue_name = f"chaos-{uuid.uuid4().hex[:8]}"
    sqs = _sqs_client(moto_url)
    queue_url, dlq_url = _create_queues(sqs, queue_name, config.visibility_timeout_s)
    settings = Settings(region=REGION, sqs_queue_name=queue_name, redis_url=config.redis_url,
                        redis_key_prefix=prefix, visibility_timeout_s=config.visibility_timeout_s,
                        max_receive_count=MAX_RECEIVE_COUNT)
    store = JobStore(settings)
    keys = chaos_keys(prefix)
    workers = WorkerPool(env=_worker_env(config, settings, moto_url, deadline), log_dir=log_dir)
    run = ChaosRun(plan=plan, workers=config.workers)

    killer = Killer(workers, store, keys, rng, run, deadline)
    kill_points = [(index + 1) * len(plan.messages) // (config.kills + 1)
                   for index in range(config.kills)]
    try:
        for slot in range(config.workers):
            workers.start(slot)
        killer.start(kill_points)
        try:
            _produce(sqs, queue_url, plan.messages, run, deadline)
        finally:
            killer.finish()
        run.timed_out = not _wait_until_empty(sqs, queue_url, deadline)
    finally:
        workers.stop_all(store.redis, keys.stop)
    run.workers_started = workers.started
    run.queue_left = _depth(sqs, queue_url)
    run.dlq_left = _depth(sqs, dlq_url)
    run.log_text = "".join(path.read_text(errors="replace")
                           for path in sorted(log_dir.glob("worker-*.log")))
    run.wall_time_s = time.monotonic() - started
    return check_run(run, store)


def _produce(sqs: SQSClient, queue_url: str, messages: list[str], run: ChaosRun,
             deadline: float) -> None:
    """Send ``messages`` 10 at a time while the queue stays shallow; count them in ``run``."""
    while run.messages_sent < len(messages) and time.monotonic() < deadline:
        if _visible(sqs, queue_url) >= MAX_VISIBLE_MESSAGES:
            time.sleep(0.05)
            continue
        for _ in range(5):
            batch = messages[run.messages_sent:run.messages_sent + 10]
            if not batch:
                break
            entries = [{"Id": str(index), "MessageBody": body} for index, body in enumerate(batch)]
            response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
            if response.get("Failed"):
                raise RuntimeError(f"SendMessageBatch to {queue_url} failed: {response['Failed']}")
            run.messages_sent += len(batch)


def _wait_until_empty(sqs: SQSClient, queue_url: str, deadline: float) -> bool:
    """Wait until no message is visible or in flight for a while; False on timeout."""
    empty_since: float | None = None
    while time.monotonic() < deadline:
        if _depth(sqs, queue_url) == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= EMPTY_QUEUE_CONFIRM_S:
                return True
        else:
            empty_since = None
        time.sleep(0.25)
    return False


def _sqs_client(moto_url: str) -> SQSClient:
    # Explicit fake credentials, region and endpoint: this client reaches only moto.
    client: SQSClient = boto3.client(
        "sqs", region_name=REGION, endpoint_url=moto_url,
        aws_access_key_id=FAKE_AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"])
    return client


def _create_queues(sqs: SQSClient, name: str, visibility_timeout_s: int) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
    queue_url = sqs.create_queue(QueueName=name, Attributes={
        "RedrivePolicy": json.dumps(redrive),
        "VisibilityTimeout": str(visibility_timeout_s),
    })["QueueUrl"]
    return queue_url, dlq_url


def _attributes(sqs: SQSClient, queue_url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(  # type: ignore[return-value]
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]


def _visible(sqs: SQSClient, queue_url: str) -> int:
    return int(_attributes(sqs, queue_url)["ApproximateNumberOfMessages"])


def _depth(sqs: SQSClient, queue_url: str) -> int:
    attributes = _attributes(sqs, queue_url)
    return (int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """Return this process's environment without AWS or mc_tasks variables, plus ``extra``."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("AWS_", "MC_TASKS_"))}
    env.update(extra)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return env


def _worker_env(config: ChaosConfig, settings: Settings, moto_url: str, deadline: float
                ) -> dict[str, str]:
    return _clean_env({
        **FAKE_AWS_ENVIRONMENT,
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_SQS_QUEUE_NAME": settings.sqs_queue_name,
        "MC_TASKS_REDIS_URL": settings.redis_url,
        "MC_TASKS_REDIS_PREFIX": settings.redis_key_prefix,
        "MC_TASKS_VISIBILITY_TIMEOUT_S": str(settings.visibility_timeout_s),
        "MC_TASKS_MAX_RECEIVE_COUNT": str(settings.max_receive_count),
        "CHAOS_WORKER_TIMEOUT_S": str(max(1.0, deadline - time.monotonic())),
        "CHAOS_RECEIVER_DELAY_MS": str(config.receiver_delay_ms),
    })


def _delete_keys(redis_url: str, prefix: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        for key in connection.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                connection.delete(*batch)
                batch = []
        if batch:
            connection.delete(*batch)
    finally:
        connection.close()


@contextlib.contextmanager
def _log_folder(log_dir: Path | None) -> Iterator[Path]:
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        yield log_dir
        return
    with tempfile.TemporaryDirectory(prefix="mc_tasks_chaos_") as folder:
        yield Path(folder)


def _validate(config: ChaosConfig) -> None:
    if config.events < 20:
        raise ValueError(f"Invalid events={config.events}: use at least 20 (one job's events).")
    if config.workers < 1 or config.kills < 0:
        raise ValueError(f"Invalid workers={config.workers} or kills={config.kills}: use at "
                         "least 1 worker and 0 or more kills.")
    if not 1 <= config.visibility_timeout_s <= 60:
        raise ValueError(f"Invalid visibility timeout {config.visibility_timeout_s} s: use "
                         "1 to 60 seconds, so killed workers' messages return within the run.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="Drain duplicated, shuffled job events with worker processes that are "
                    "SIGKILLed mid-batch, and check that no final signal is lost or repeated.")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS,
                        help="unique events to send, 20 per job (default %(default)s)")
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS,
                        help="SIGKILLs of drain workers during sending (default %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="drain worker processes (default %(default)s)")
    parser.add_argument("--visibility-timeout", type=int, default=DEFAULT_VISIBILITY_TIMEOUT_S,
                        help="queue visibility timeout and store lease in seconds "
                             "(default %(default)s)")
    parser.add_argument("--receiver-delay-ms", type=float, default=0.0,
                        help="milliseconds each signal receiver sleeps, which widens the window "
                             "for a kill inside a receiver (default %(default)s)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help="Redis for the job state store; keys use a unique prefix and are "
                             "deleted afterwards (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds the whole run may take (default %(default)s)")
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed,
                        help="random seed of events, duplicates, order and victims")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="keep moto and worker logs in this folder")
    parser.add_argument("--worker", action="store_true",
                        help="run one drain worker (started by the check itself)")
    args = parser.parse_args(argv)
    if args.worker:
        return run_worker(WORKER_DRAIN_DURATION_S)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = ChaosConfig(events=args.events, workers=args.workers, kills=args.kills,
                         visibility_timeout_s=args.visibility_timeout,
                         redis_url=args.redis_url, timeout_s=args.timeout,
                         receiver_delay_ms=args.receiver_delay_ms, seed=args.seed,
                         log_dir=args.log_dir)
    result = run_chaos(config)
    print(result.format())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
