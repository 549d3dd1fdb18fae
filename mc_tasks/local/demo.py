"""End-to-end demo: one real video through the whole pipeline on this machine.

``python -m mc_tasks.local.demo [--input PATH]`` (``make demo``) starts the
local stack, a Celery worker and beat, provisions the SQS queue and EventBridge
rule, submits a job with an MP4 output, an HLS ladder and thumbnails as a host
application would, follows its signals, verifies the outputs with ffprobe and
stops every process it started. It exits with 1 and names the step that failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis

from mc_tasks.errors import LocalStackError
from mc_tasks.local.media import check_outputs, make_sample_clip, probe, require_tool
from mc_tasks.local.pipeline import REPOSITORY_ROOT, LocalStack
from mc_tasks.settings import mask_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEMO_BUCKET = "mc-tasks-demo"
DEMO_REFERENCE = "demo-video-1"
#: Seconds to wait for the worker to respond to a ping.
WORKER_START_TIMEOUT_S = 60.0
#: Seconds to wait for a task result (setup, submission).
TASK_TIMEOUT_S = 120.0
#: Seconds to wait for the job's final signal.
DEFAULT_JOB_TIMEOUT_S = 600.0
FINAL_SIGNALS = ("job_completed", "job_failed", "job_canceled")


class DemoError(Exception):
    """A demo step failed; the message names the value and the fix."""


class Steps:
    """Numbered, timed steps that print one line each."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0
        self.current = ""

    def run(self, title: str, action: Callable[[], T]) -> T:
        self.number += 1
        self.current = title
        print(f"[{self.number}/{self.total}] {title} ...", flush=True)
        started = time.monotonic()
        result = action()
        print(f"      done in {time.monotonic() - started:.1f} s", flush=True)
        return result


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, help="video to transcode (default: a 6-second "
                        "test clip made with ffmpeg)")
    parser.add_argument("--work-dir", type=Path, default=REPOSITORY_ROOT / ".demo",
                        help="directory for logs and temporary files (default: .demo)")
    parser.add_argument("--output-dir", type=Path, default=REPOSITORY_ROOT / "demo-output",
                        help="directory that receives a copy of the outputs (default: demo-output)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_JOB_TIMEOUT_S,
                        help="seconds to wait for the job to finish (default: 600)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    run_dir = args.work_dir / time.strftime("%Y%m%d-%H%M%S")
    steps = Steps(total=8)
    stack = LocalStack(run_dir)
    # SIGTERM takes the same path as Ctrl-C, so the processes started below are stopped.
    previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        _run(steps, stack, args, run_dir)
    except (DemoError, LocalStackError) as exc:
        print(f"\nDemo failed at step {steps.number} ({steps.current}): {exc}", file=sys.stderr)
        _print_log_location(run_dir)
        return 1
    except Exception as exc:
        print(f"\nDemo failed at step {steps.number} ({steps.current}): "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        _print_log_location(run_dir)
        return 1
    except KeyboardInterrupt:
        print("\nDemo interrupted; stopping the processes it started.", file=sys.stderr)
        return 130
    finally:
        stack.stop()
        _delete_run_keys(stack)
        signal.signal(signal.SIGTERM, previous_handler)
    return 0


def _print_log_location(run_dir: Path) -> None:
    if run_dir.exists():
        print(f"Logs of every process: {run_dir}", file=sys.stderr)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _delete_run_keys(stack: LocalStack) -> None:
    """Delete the Redis keys of this run (job records, recorded signals, Celery queue)."""
    if not stack.redis_url or stack.redis_process_started():
        return
    connection = redis.Redis.from_url(stack.redis_url, socket_connect_timeout=1)
    try:
        for pattern in (f"*{stack.run_id}*",):
            keys = list(connection.scan_iter(match=pattern, count=1000))
            if keys:
                connection.delete(*keys)
    except redis.RedisError as exc:
        logger.warning("Could not delete the demo's Redis keys: %s", exc)
    finally:
        connection.close()


def _run(steps: Steps, stack: LocalStack, args: argparse.Namespace, run_dir: Path) -> None:
    if args.input is not None:
        steps.run("Check the input video", lambda: _check_input(args.input))

    else:
        steps.run("Check ffmpeg and ffprobe",
                  lambda: (require_tool("ffmpeg"), require_tool("ffprobe")))
    steps.run("Start moto, Redis and the local MediaConvert on 127.0.0.1", stack.start)
    print(f"      moto {stack.moto_url}, MediaConvert {stack.mediaconvert_url}, "
          f"Redis {mask_url(stack.redis_url)}")

    # From here on this process is the host application: it talks to the same
    # servers as the worker, through the same environment.
    os.environ.update(stack.env)
    sys.path.insert(0, str(REPOSITORY_ROOT))
    from mc_tasks.clients import clear_clients
    from mc_tasks.settings import get_settings

    get_settings.cache_clear()
    clear_clients()
    from mc_tasks.celery_app import app

    steps.run("Start a Celery worker and celery beat", lambda: _start_celery(stack, app))
    steps.run("Provision the SQS queue, dead-letter queue and EventBridge rule", _provision)
    input_uri, duration_s = steps.run(
        "Prepare and upload the input video", lambda: _prepare_input(args.input, run_dir))
    job_id = steps.run("Submit the transcode with submit_transcode.delay()",
                       lambda: _submit(input_uri))
    outputs = steps.run("Follow the job's signals until it completes",
                        lambda: _follow(job_id, args.timeout))
    steps.run("Verify the outputs with ffprobe",
              lambda: _verify(job_id, outputs, args.output_dir, duration_s))


def _check_input(path: Path) -> None:
    require_tool("ffmpeg")
    if not path.is_file():
        raise DemoError(f"INPUT={path} is not a file: give the path of a video file.")
    try:
        info = probe(path)
    except LocalStackError as exc:
        raise DemoError(f"INPUT={path} is not a video ffprobe can read: {exc}") from None
    if info.video_codec is None:
        raise DemoError(f"INPUT={path} has no video stream: give the path of a video file.")
    print(f"      {info.width}x{info.height} {info.video_codec}/{info.audio_codec} "
          f"{info.duration_s:.1f} s")


def _start_celery(stack: LocalStack, app: Any) -> None:
    worker = stack.start_worker()
    stack.start_beat()
    deadline = time.monotonic() + WORKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not worker.running():
            raise DemoError(f"the Celery worker exited during startup:\n{worker.log_tail()}")
        if app.control.ping(timeout=1.0):
            return
    raise DemoError(f"the Celery worker did not respond within {WORKER_START_TIMEOUT_S:g} s:\n"
                    f"{worker.log_tail()}")


def _provision() -> None:
    from mc_tasks.tasks import setup_event_delivery

    report = setup_event_delivery.delay().get(timeout=TASK_TIMEOUT_S)
    for resource in report.get("resources", []):
        print(f"      {resource}")


def _prepare_input(input_path: Path | None, run_dir: Path) -> tuple[str, float]:
    from mc_tasks.clients import get_client

    if input_path is None:
        input_path = make_sample_clip(run_dir / "sample.mp4")
    duration_s = probe(input_path).duration_s
    s3 = get_client("s3")
    s3.create_bucket(Bucket=DEMO_BUCKET)
    key = f"inputs/{input_path.name}"
    s3.upload_file(str(input_path), DEMO_BUCKET, key)
    uri = f"s3://{DEMO_BUCKET}/{key}"
    print(f"      {uri} ({duration_s:.1f} s)")
    return uri, duration_s


def _submit(input_uri: str) -> str:
    from mc_tasks.tasks import submit_transcode

    result = submit_transcode.delay(
        input_uri, f"s3://{DEMO_BUCKET}/outputs/", reference=DEMO_REFERENCE,
        presets=["mp4", "hls", "thumbnails"],
    ).get(timeout=TASK_TIMEOUT_S)
    job_id: str = result["job_id"]
    print(f"      MediaConvert job {job_id}, destination {result.get('destination')}")
    return job_id


def _follow(job_id: str, timeout_s: float) -> dict[str, Any]:
    from mc_tasks.local.recorder import read_records
    from mc_tasks.settings import get_settings

    settings = get_settings()
    seen = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = read_records(settings, seen)
        seen += len(records)
        for record in records:
            if record.get("job_id") != job_id:
                continue
            name = record["signal"]
            if name == "job_progress":
                print(f"      progress {record.get('percent')}% ({record.get('phase')})")
            else:
                print(f"      {name}")
            if name == "job_completed":
                outputs: dict[str, Any] = record.get("outputs") or {}
                return outputs
            if name == "job_failed":
                raise DemoError(f"job {job_id} failed with error {record.get('error_code')}: "
                                f"{record.get('error_message')}")
            if name == "job_canceled":
                raise DemoError(f"job {job_id} was canceled")
        time.sleep(0.5)
    raise DemoError(f"no final signal for job {job_id} within {timeout_s:g} s; see the worker "
                    "and local MediaConvert logs")


def _verify(job_id: str, outputs: dict[str, Any], output_dir: Path, duration_s: float) -> None:
    from mc_tasks.clients import get_client

    s3 = get_client("s3")
    target = output_dir / job_id
    paginator = s3.get_paginator("list_objects_v2")
    count = 0
    for page in paginator.paginate(Bucket=DEMO_BUCKET, Prefix="outputs/"):
        for item in page.get("Contents", []):
            local = target / item["Key"]
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(DEMO_BUCKET, item["Key"], str(local))
            count += 1
    print(f"      downloaded {count} objects to {target}")

    check = check_outputs(target, input_duration_s=duration_s)
    for line in check.lines:
        print(f"      {line}")
    if not check.ok:
        raise DemoError("output verification failed:\n  " + "\n  ".join(check.failures))

    print("\nOutputs reported by the completed signal:")
    for uri in sorted(_s3_uris(outputs)):
        print(f"  {uri}")
    print(f"Local copies: {target}")


def _s3_uris(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if value.startswith("s3://") else set()
    if isinstance(value, dict):
        return set().union(*(_s3_uris(item) for item in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_s3_uris(item) for item in value)) if value else set()
    return set()


if __name__ == "__main__":
    sys.exit(main())
