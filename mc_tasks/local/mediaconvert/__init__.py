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
from collections.abc import Mapping
from pathlib import Path

from mc_tasks.local.mediaconvert.ffmpeg_args import ffmpeg_argv
from mc_tasks.local.mediaconvert.jobs import IDEMPOTENCY_WINDOW_S
from mc_tasks.local.mediaconvert.server import LocalMediaConvert
from mc_tasks.local.stack import LOOPBACK, ManagedProcess, free_port

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
    process.wait_for_port(port)
    process.wait_for_http(f"{url}{_READY_PATH}")
    return process, url
