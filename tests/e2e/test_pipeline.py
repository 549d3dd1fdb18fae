"""End to end: real Celery worker and beat processes, moto's server, the local
MediaConvert and ffmpeg, driven the way a host application drives them."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from mc_tasks.clients import clear_clients, get_client
from mc_tasks.local.media import check_outputs, make_sample_clip, probe
from mc_tasks.local.pipeline import REPOSITORY_ROOT, LocalStack
from mc_tasks.local.recorder import read_records
from mc_tasks.settings import get_settings
from tests.conftest import TEST_REDIS_URL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BUCKET = "e2e-media"
#: Seconds to wait for a job's final signal.
JOB_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    saved_environ = dict(os.environ)
    local = LocalStack(tmp_path_factory.mktemp("stack"), redis_url=TEST_REDIS_URL)
    with local:
        os.environ.update(local.env)
        sys.path.insert(0, str(REPOSITORY_ROOT))
        get_settings.cache_clear()
        clear_clients()
        from mc_tasks.celery_app import app

        worker = local.start_worker()
        local.start_beat()
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0):
            assert worker.running(), worker.log_tail()
            assert time.monotonic() < deadline, "worker did not answer a ping within 60 s"
        get_client("s3").create_bucket(Bucket=BUCKET)
        try:
            yield local
        finally:
            os.environ.clear()
            os.environ.update(saved_environ)
            get_settings.cache_clear()
            clear_clients()
            connection = redis.Redis.from_url(TEST_REDIS_URL)
            keys = list(connection.scan_iter(match=f"*{local.run_id}*"))
            if keys:
                connection.delete(*keys)
            connection.close()


@pytest.fixture(scope="module")
def provisioned(stack: LocalStack) -> dict[str, Any]:
    from mc_tasks.tasks import setup_event_delivery

    report: dict[str, Any] = setup_event_delivery.delay().get(timeout=120)
    return report


def wait_for_final_signal(job_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        records = [r for r in read_records(get_settings()) if r.get("job_id") == job_id]
        if any(r["signal"] in ("job_completed", "job_failed", "job_canceled") for r in records):
            time.sleep(get_settings().drain_interval_s * 2)
            return [r for r in read_records(get_settings()) if r.get("job_id") == job_id]
        time.sleep(0.5)
    raise AssertionError(f"no final signal for job {job_id} within {JOB_TIMEOUT_S:g} s")


def upload(path: Path, key: str) -> str:
    get_client("s3").upload_file(str(path), BUCKET, key)
    return f"s3://{BUCKET}/{key}"


def test_video_transcodes_to_completed_signal(
    stack: LocalStack, provisioned: dict[str, Any], tmp_path: Path
) -> None:
    from mc_tasks.tasks import submit_transcode

    clip = make_sample_clip(tmp_path / "clip one.mp4", duration_s=3.0, width=640, height=360)
    input_uri = upload(clip, "inputs/clip one.mp4")

    result = submit_transcode.delay(
        input_uri, f"s3://{BUCKET}/outputs/", reference="video-42",
        presets=["mp4", "hls", "thumbnails"],
    ).get(timeout=120)
    records = wait_for_final_signal(result["job_id"])

    names = [r["signal"] for r in records]
    assert names.count("job_submitted") == 1
    assert names.count("job_completed") == 1, records
    assert "job_failed" not in names
    completed = next(r for r in records if r["signal"] == "job_completed")
    assert completed["reference"] == "video-42"
    percents = [r["percent"] for r in records
                if r["signal"] == "job_progress" and r.get("percent") is not None]
    assert percents == sorted(percents)
    assert names.index("job_completed") == len(names) - 1

    download_dir = tmp_path / "outputs"
    s3 = get_client("s3")
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix="outputs/")
    for item in listing.get("Contents", []):
        local = download_dir / item["Key"]
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(BUCKET, item["Key"], str(local))
    check = check_outputs(download_dir, input_duration_s=probe(clip).duration_s)
    assert check.failures == []

    reported = repr(completed["outputs"])
    assert ".m3u8" in reported
    assert ".mp4" in reported
    assert ".jpg" in reported


def test_missing_input_fires_failed_signal(
    stack: LocalStack, provisioned: dict[str, Any]
) -> None:
    from mc_tasks.tasks import submit_transcode

    missing = f"s3://{BUCKET}/inputs/does-not-exist.mp4"
    result = submit_transcode.delay(
        missing, f"s3://{BUCKET}/failed/", reference="video-missing", presets=["mp4"],
    ).get(timeout=120)
    records = wait_for_final_signal(result["job_id"])

    failed = [r for r in records if r["signal"] == "job_failed"]
    assert len(failed) == 1
    assert failed[0]["reference"] == "video-missing"
    assert isinstance(failed[0]["error_code"], int)
    assert "does-not-exist.mp4" in failed[0]["error_message"]
    assert not any(r["signal"] == "job_completed" for r in records)
