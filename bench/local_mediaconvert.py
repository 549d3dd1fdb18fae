"""Wall time of a job on the local MediaConvert against running its ffmpeg command directly.

The clip is a 1280x720 test pattern with a tone, 10 s long (4 s with
``--quick``), made by ffmpeg and uploaded to S3 on moto's server. The job uses
the default presets (MP4, the HLS ladder and thumbnails). Subject: CreateJob
on the local MediaConvert, then GetJob every 0.1 s until COMPLETE; the server
downloads the input, probes it, runs ffmpeg, probes and uploads every output
and sends the job's events to EventBridge. Baseline: the same ffmpeg argv
(:func:`mc_tasks.local.mediaconvert.ffmpeg_argv`) on the local copy of the
clip. One warm-up round of both is not counted, then rounds alternate.
Target: the job takes at most 1.1x ffmpeg's time.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from bench.common import (
    REGION,
    ROLE_ARN,
    BenchContext,
    Figure,
    moto_server,
    ratio_figure,
)
from mc_tasks.local.media import make_sample_clip
from mc_tasks.local.mediaconvert import ffmpeg_argv, start_local_mediaconvert
from mc_tasks.local.mediaconvert.ffmpeg_args import group_dirs
from mc_tasks.local.mediaconvert.plan import plan_job
from mc_tasks.submit import build_job_settings

logger = logging.getLogger(__name__)

NAME = "local_mediaconvert"
BUCKET = "bench-media"
INPUT_KEY = "in/clip.mp4"
POLL_INTERVAL_S = 0.1
#: Seconds after which a job still running counts as failed.
JOB_TIMEOUT_S = 600.0
FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCELED")


def run_job(client: Any, job_settings: dict[str, Any]) -> float:
    """Create a job, poll it to COMPLETE and return the seconds that took."""
    started = time.perf_counter()
    job_id = client.create_job(Role=ROLE_ARN, Settings=job_settings, Queue="Default")["Job"]["Id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = client.get_job(Id=job_id)["Job"]
        if job["Status"] in FINAL_STATUSES:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"Job {job_id} still {job['Status']} after {JOB_TIMEOUT_S:g} s.")
        time.sleep(POLL_INTERVAL_S)
    elapsed_s = time.perf_counter() - started
    if job["Status"] != "COMPLETE":
        raise RuntimeError(f"Job {job_id} ended {job['Status']}: {job.get('ErrorMessage')}")
    return elapsed_s


def run_ffmpeg(job_settings: dict[str, Any], clip: Path, output_dir: Path) -> float:
    """Run the job's ffmpeg argv on the local clip and return the seconds it took."""
    for directory in group_dirs(plan_job(job_settings), output_dir):
        directory.mkdir(parents=True, exist_ok=True)
    argv = ffmpeg_argv(job_settings, clip, output_dir)
    started = time.perf_counter()
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, check=False)
    elapsed_s = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"ffmpeg exited with code {completed.returncode}: "
                           f"{completed.stderr[-600:]}")
    shutil.rmtree(output_dir)
    return elapsed_s


def run(ctx: BenchContext) -> list[Figure]:
    """Time the job and the bare ffmpeg command in alternating rounds."""
    duration_s = 4.0 if ctx.quick else 10.0
    rounds = 2 if ctx.quick else 3
    log_dir = ctx.log_dir(NAME)
    clip = make_sample_clip(log_dir / "clip.mp4", duration_s=duration_s)
    job_settings = build_job_settings(f"s3://{BUCKET}/{INPUT_KEY}",
                                      f"s3://{BUCKET}/out/{uuid.uuid4().hex}/")
    jobs: list[float] = []
    ffmpeg: list[float] = []

    with moto_server(log_dir):
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(clip), BUCKET, INPUT_KEY)
        server, url = start_local_mediaconvert(log_dir, env=dict(os.environ),
                                               work_dir=log_dir / "server-work")
        try:
            client = boto3.client("mediaconvert", region_name=REGION, endpoint_url=url)
            # Warm-up round, not counted: the first runs pay for cold caches and page-ins.
            run_job(client, job_settings)
            run_ffmpeg(job_settings, clip, log_dir / "ffmpeg-out")
            for index in range(rounds):
                order: list[tuple[Callable[[], float], list[float]]] = [
                    (lambda: run_job(client, job_settings), jobs),
                    (lambda: run_ffmpeg(job_settings, clip, log_dir / "ffmpeg-out"), ffmpeg),
                ]
                if index % 2:
                    order.reverse()
                for function, samples in order:
                    samples.append(function())
                logger.info("Round %d: job %.2f s, ffmpeg %.2f s", index + 1, jobs[-1],
                            ffmpeg[-1])
        finally:
            server.stop()

    return [ratio_figure(
        NAME, "job wall time vs bare ffmpeg", "s", jobs, ffmpeg, target="<= 1.1x",
        check=lambda ratio: ratio <= 1.1,
        details={"clip_duration_s": duration_s, "clip_size": "1280x720", "rounds": rounds,
                 "presets": "mp4, hls, thumbnails", "poll_interval_s": POLL_INTERVAL_S})]
