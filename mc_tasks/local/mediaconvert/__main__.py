"""Command line: ``python -m mc_tasks.local.mediaconvert --port N`` runs the local MediaConvert.

The endpoint of moto's server (or another local stack) must be in
``AWS_ENDPOINT_URL``; the server stops cleanly on SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from mc_tasks.errors import LocalStackError
from mc_tasks.local.mediaconvert.runner import DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S
from mc_tasks.local.mediaconvert.server import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_CONCURRENCY,
    DEFAULT_REGION,
    LocalMediaConvert,
)

logger = logging.getLogger("mc_tasks.local.mediaconvert")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mc_tasks.local.mediaconvert",
        description="Run a local AWS Elemental MediaConvert API that transcodes with ffmpeg, "
                    "reads and writes S3 and sends job events to EventBridge at "
                    "AWS_ENDPOINT_URL.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="loopback address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on")
    parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID,
                        help="account id in ARNs and events (default: %(default)s)")
    parser.add_argument("--region", default=DEFAULT_REGION,
                        help="region in ARNs and of the S3 and EventBridge clients "
                             "(default: %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="directory for inputs and outputs while jobs run "
                             "(default: a temporary directory removed at exit)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="jobs that run at the same time (default: %(default)s)")
    parser.add_argument("--max-status-update-interval", type=float,
                        default=DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S,
                        help="maximum seconds between STATUS_UPDATE events of a running job "
                             "(default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        service = LocalMediaConvert(
            args.host, args.port, account_id=args.account_id, region=args.region,
            work_dir=args.work_dir, concurrency=args.concurrency,
            max_status_update_interval_s=args.max_status_update_interval)
    except (LocalStackError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # shutdown() waits for serve_forever() to return, so it runs on its own thread.
    stopper = threading.Thread(target=service.shutdown, name="shutdown")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        logger.info("Received signal %d; stopping", signum)
        if not stopping.is_set():
            stopping.set()
            stopper.start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.serve_forever()
    stopper.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
