"""Client-side cost of ``submit_transcode`` against a raw CreateJob, per job.

Both run against the local MediaConvert with its Default queue PAUSED, so it
stores the jobs and transcodes nothing. The baseline is ``create_job`` on a
cached client with the same request (settings from the default presets, the
same UserMetadata, a new ClientRequestToken per call). The subject is
:func:`mc_tasks.submit.submit_transcode` with a new submission id per call:
request validation, settings building, the submission record, the CreateJob
rate limit (set high enough never to wait), CreateJob and the job state record.

``paused_queue`` is ``ignore``: the queue is paused only to keep ffmpeg idle,
and with the default ``warn`` every submission would log a warning about it.
Targets: wall time and CPU per call at most 1.2x the baseline's.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from bench.common import (
    BenchContext,
    Figure,
    Sample,
    delete_keys,
    moto_server,
    ratio_figure,
    timed,
)
from mc_tasks.clients import clear_clients, get_client
from mc_tasks.local.mediaconvert import start_local_mediaconvert
from mc_tasks.settings import Settings
from mc_tasks.submit import build_job_settings, build_user_metadata, submit_transcode

logger = logging.getLogger(__name__)

NAME = "submit_overhead"
INPUT_URI = "s3://bench-media/in/clip.mp4"
DESTINATION = "s3://bench-media/out/"
#: Rate limit far above what one process can submit, so the limiter never waits.
UNLIMITED_RATE_PER_S = 1e6


def raw_create_job(settings: Settings, count: int) -> int:
    """Send ``count`` CreateJob requests like the ones submit_transcode builds."""
    client = get_client("mediaconvert", settings)
    submission_id = uuid.uuid4().hex
    params: dict[str, Any] = {
        "Role": settings.require_role_arn(),
        "Settings": build_job_settings(INPUT_URI, f"{DESTINATION}{submission_id}/"),
        "Queue": settings.mediaconvert_queue,
        "UserMetadata": build_user_metadata(settings, submission_id, "video-1", None),
        "Priority": 0,
        "StatusUpdateInterval": "SECONDS_10",
    }
    for _ in range(count):
        client.create_job(**params, ClientRequestToken=uuid.uuid4().hex)
    return count


def submit(settings: Settings, count: int) -> int:
    """Submit ``count`` new jobs with submit_transcode."""
    for index in range(count):
        submit_transcode(INPUT_URI, DESTINATION, reference=f"video-{index}", settings=settings,
                         submission_id=uuid.uuid4().hex)
    return count


def run(ctx: BenchContext) -> list[Figure]:
    """Measure both sides in alternating rounds; return the wall and CPU figures."""
    calls = 40 if ctx.quick else 100
    rounds = 3 if ctx.quick else 5
    subject: list[Sample] = []
    baseline: list[Sample] = []
    log_dir = ctx.log_dir(NAME)
    settings = ctx.settings(NAME, create_job_rate_per_s=UNLIMITED_RATE_PER_S,
                            create_job_burst=int(UNLIMITED_RATE_PER_S), paused_queue="ignore")

    with moto_server(log_dir):
        mediaconvert, url = start_local_mediaconvert(log_dir, env=dict(os.environ))
        os.environ["AWS_ENDPOINT_URL_MEDIACONVERT"] = url
        clear_clients()
        try:
            get_client("mediaconvert", settings).update_queue(Name="Default", Status="PAUSED")
            raw_create_job(settings, 10)
            submit(settings, 10)
            for index in range(rounds):
                order = [(lambda: raw_create_job(settings, calls), baseline),
                         (lambda: submit(settings, calls), subject)]
                if index % 2:
                    order.reverse()
                for function, samples in order:
                    samples.append(timed(function))
                logger.info("Round %d: submit_transcode %.2f ms/call, create_job %.2f ms/call",
                            index + 1, subject[-1].wall_per_item_ms,
                            baseline[-1].wall_per_item_ms)
        finally:
            mediaconvert.stop()
            os.environ.pop("AWS_ENDPOINT_URL_MEDIACONVERT", None)
            clear_clients()
    delete_keys(f"{ctx.key_prefix}:{NAME}")

    sizes = {"calls_per_round": calls, "rounds": rounds}
    return [
        ratio_figure(NAME, "wall time per job vs raw create_job", "ms",
                     [s.wall_per_item_ms for s in subject], [s.wall_per_item_ms for s in baseline],
                     target="<= 1.2x", check=lambda ratio: ratio <= 1.2, details=sizes),
        ratio_figure(NAME, "client CPU per job vs raw create_job", "ms",
                     [s.cpu_per_item_ms for s in subject], [s.cpu_per_item_ms for s in baseline],
                     target="<= 1.2x", check=lambda ratio: ratio <= 1.2, details=sizes),
    ]
