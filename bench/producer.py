"""A producer process that keeps an SQS queue topped up with valid job events.

moto's server scans the whole queue on every ReceiveMessage and SendMessage
(moto 5.2.5: about 0.45 ms per queued message on the benchmark machine), so a
pre-filled backlog of thousands of events would measure moto's scan rather
than the consumer. This producer keeps the queue at about ``--depth`` messages
(visible plus in flight) until it has sent ``--count``, and prints one JSON line
with what it did. It runs in its own process so that its CPU is not counted
as the consumer's.

Usage: ``python -m bench.producer --queue-url URL --count N [--depth D]``, with
``AWS_ENDPOINT_URL`` aimed at moto's server.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from bench.common import (
    REGION,
    SEND_BATCH,
    EventFactory,
    queue_depth,
    send_bodies,
    sqs_client,
)
from mc_tasks.settings import Settings

#: Messages kept in the queue by default: shallow enough that moto's scans stay cheap.
DEFAULT_DEPTH = 40
#: Seconds between two depth checks while the queue is full enough.
POLL_INTERVAL_S = 0.005
#: Seconds after which the producer gives up, so a stalled consumer cannot keep it alive.
DEFAULT_TIMEOUT_S = 900.0


def produce(queue_url: str, count: int, depth: int, application: str, timeout_s: float
            ) -> dict[str, float]:
    """Send ``count`` events, keeping about ``depth`` in the queue; return counts and timings."""
    sqs = sqs_client()
    factory = EventFactory(Settings(region=REGION, application=application))
    pending: list[str] = []
    sent = 0
    checks = 0
    started = time.monotonic()
    deadline = started + timeout_s

    while sent < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"producer: timed out after {timeout_s:g} s with {sent} of "
                             f"{count} events sent; is a consumer running?")
        checks += 1
        missing = depth - queue_depth(sqs, queue_url)
        if missing < SEND_BATCH:
            time.sleep(POLL_INTERVAL_S)
            continue
        batch_size = min(missing - missing % SEND_BATCH, count - sent)
        while len(pending) < batch_size:
            pending.extend(factory.job_bodies())
        send_bodies(sqs, queue_url, pending[:batch_size])
        del pending[:batch_size]
        sent += batch_size

    return {"sent": sent, "depth_checks": checks, "wall_s": time.monotonic() - started}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.producer",
                                     description="Keep an SQS queue topped up with job events.")
    parser.add_argument("--queue-url", required=True, help="URL of the queue to fill")
    parser.add_argument("--count", type=int, required=True, help="events to send in total")
    parser.add_argument("--depth", type=int, default=DEFAULT_DEPTH,
                        help="messages to keep in the queue (default: %(default)s)")
    parser.add_argument("--application", default="mc_tasks",
                        help="application marker in the events' UserMetadata")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help="seconds after which to give up (default: %(default)s)")
    args = parser.parse_args(argv)
    result = produce(args.queue_url, args.count, args.depth, args.application, args.timeout)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
