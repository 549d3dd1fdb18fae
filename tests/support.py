"""Helpers shared by test modules that need moto's server and the local MediaConvert."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mc_tasks.local.mediaconvert import start_local_mediaconvert
from mc_tasks.local.stack import FAKE_AWS_ENVIRONMENT, start_moto_server


@contextmanager
def local_aws_servers(log_dir: Path, **options: Any) -> Iterator[tuple[str, str]]:
    """Run moto's server and the local MediaConvert on 127.0.0.1; yield both URLs.

    ``options`` go to :func:`start_local_mediaconvert` (``work_dir``,
    ``concurrency``, ...). Both processes are stopped by their PID on exit.
    """
    moto, moto_url = start_moto_server(log_dir)
    try:
        env = {**os.environ, **FAKE_AWS_ENVIRONMENT, "AWS_ENDPOINT_URL": moto_url}
        server, mediaconvert_url = start_local_mediaconvert(log_dir, env, **options)
        try:
            yield moto_url, mediaconvert_url
        finally:
            server.stop()
    finally:
        moto.stop()
