"""A local AWS Elemental MediaConvert for demos and end-to-end tests.

moto has no MediaConvert, so this package provides one: an HTTP server that
botocore's ``mediaconvert`` client reaches through ``endpoint_url``. It
implements CreateJob, GetJob, ListJobs, CancelJob, GetQueue, ListQueues,
UpdateQueue and DescribeEndpoints, transcodes with ffmpeg, reads inputs from
and writes outputs to S3, and sends "MediaConvert Job State Change" events to
EventBridge, all at the endpoint in ``AWS_ENDPOINT_URL`` (moto's server). The
job settings it accepts are listed in :mod:`mc_tasks.local.mediaconvert.support`;
anything else is rejected at CreateJob with BadRequestException.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from mc_tasks.errors import LocalStackError
from mc_tasks.local.mediaconvert.ffmpeg_args import ffmpeg_argv
from mc_tasks.local.mediaconvert.jobs import IDEMPOTENCY_WINDOW_S
from mc_tasks.local.mediaconvert.server import LocalMediaConvert
from mc_tasks.local.stack import LOOPBACK, STARTUP_TIMEOUT_S, ManagedProcess, free_port

__all__ = [
    "IDEMPOTENCY_WINDOW_S",
    "LocalMediaConvert",
    "ffmpeg_argv",
    "start_local_mediaconvert",
]

#: Path that the started server must respond to before it counts as ready.
_READY_PATH = "/2017-08-29/queues/Default"


def start_local_mediaconvert(log_dir: Path, env: Mapping[str, str] | None = None,
                             **options: str | int | float | Path) -> tuple[ManagedProcess, str]:
    """Start the local MediaConvert on a free loopback port; return the process and its URL.

    ``env`` is the child's whole environment (the parent's when None) and must
    contain ``AWS_ENDPOINT_URL`` for S3 and EventBridge. ``options`` are the
    command line options without dashes: ``account_id``, ``region``,
    ``work_dir``, ``concurrency``, ``max_status_update_interval``. The log goes
    to ``log_dir/mediaconvert.log``. Raise LocalStackError if the server does not
    respond within :data:`~mc_tasks.local.stack.STARTUP_TIMEOUT_S` seconds.
    """
    port = free_port()
    argv = [sys.executable, "-m", "mc_tasks.local.mediaconvert", "--host", LOOPBACK,
            "--port", str(port)]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    process = ManagedProcess("local MediaConvert", argv, env=env,
                             log_path=log_dir / "mediaconvert.log")
    url = f"http://{LOOPBACK}:{port}"
    try:
        process.wait_for_port(port)
        _wait_until_responding(f"{url}{_READY_PATH}", process)
    except LocalStackError:
        process.stop()
        raise
    return process, url


def _wait_until_responding(url: str, process: ManagedProcess,
                          timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL built here
                return
        except (urllib.error.URLError, OSError):
            if not process.running():
                break
            time.sleep(0.1)
    raise LocalStackError(f"{process.name} did not respond at {url}. Last log lines:\n"
                          f"{process.log_tail()}")
