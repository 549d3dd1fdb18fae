"""Reconciliation and cancel against the local MediaConvert and moto's server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from mc_tasks import signals
from mc_tasks.clients import clear_clients
from mc_tasks.dispatch import handle_event
from mc_tasks.errors import InvalidJobError, MediaConvertNotFound
from mc_tasks.events import parse_message
from mc_tasks.local.media import make_sample_clip
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY
from mc_tasks.reconcile import cancel_job, changes_from_get_job, reconcile_jobs
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore
from tests import event_samples as samples
from tests.support import local_aws_servers

ROLE_ARN = "arn:aws:iam::123456789012:role/MediaConvertRole"
BUCKET = "reconcile-media"
INPUT_URI = f"s3://{BUCKET}/in/clip.mp4"
#: Seconds a test waits for a local job to finish.
JOB_TIMEOUT_S = 30.0


@dataclass
class Stack:
    mediaconvert_url: str
    client: Any


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = tmp_path_factory.mktemp("logs")
    work_dir = tmp_path_factory.mktemp("work")
    with local_aws_servers(log_dir, work_dir=work_dir) as (moto_url, url):
        clip = make_sample_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", duration_s=1.0,
                                width=320, height=180)
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(clip), BUCKET, "in/clip.mp4")
        client = boto3.client("mediaconvert", endpoint_url=url, region_name="us-east-1")
        yield Stack(url, client)


@pytest.fixture
def mediaconvert(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local MediaConvert client; mc_tasks' clients reach it through the endpoint variable."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDIACONVERT", stack.mediaconvert_url)
    clear_clients()
    yield stack.client
    clear_clients()


@pytest.fixture
def recorded() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()
    receivers = []
    for signal in (signals.job_progressing, signals.job_progress, signals.job_completed,
                   signals.job_failed, signals.job_canceled, signals.job_info):
        def receive(sender: str, _name: str = signal.name, **kwargs: Any) -> None:
            with lock:
                calls.append((_name, kwargs))
        signal.connect(receive, weak=False)
        receivers.append((signal, receive))
    yield calls
    for signal, receive in receivers:
        signal.disconnect(receive)


def create_job(client: Any, reference: str, input_uri: str = INPUT_URI) -> str:
    audio = [{"AudioSourceName": "Audio Selector 1", "CodecSettings": {
        "Codec": "AAC",
        "AacSettings": {"Bitrate": 96000, "CodingMode": "CODING_MODE_2_0", "SampleRate": 48000},
    }}]
    settings = {
        "Inputs": [{"FileInput": input_uri, "VideoSelector": {},
                    "AudioSelectors": {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}}}],
        "OutputGroups": [{
            "Name": "File Group",
            "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": {
                "Destination": f"s3://{BUCKET}/out/{reference}/"}},
            "Outputs": [{"NameModifier": "_sd", "ContainerSettings": {"Container": "MP4"},
                         "VideoDescription": {"Width": 160, "Height": 90, "CodecSettings": {
                             "Codec": "H_264", "H264Settings": {
                                 "RateControlMode": "CBR", "Bitrate": 200_000}}},
                         "AudioDescriptions": audio}],
        }],
    }
    job = client.create_job(Role=ROLE_ARN, Settings=settings, UserMetadata={
        REFERENCE_KEY: reference, APPLICATION_KEY: "mc_tasks"})["Job"]
    job_id: str = job["Id"]
    return job_id


def wait_for_final(client: Any, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get_job(Id=job_id)["Job"]
        if job["Status"] in ("COMPLETE", "ERROR", "CANCELED"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"Job {job_id} did not finish within {JOB_TIMEOUT_S} s")


def names(calls: list[tuple[str, dict[str, Any]]], job_id: str) -> list[str]:
    return [name for name, kwargs in calls if kwargs["job_id"] == job_id]


def test_lost_complete_event_reconciled_once(settings: Settings, mediaconvert: Any,
                                             recorded: list[tuple[str, dict[str, Any]]]) -> None:
    store = JobStore(settings)
    job_id = create_job(mediaconvert, "rec-complete")
    store.record_submitted(job_id, "rec-complete")
    wait_for_final(mediaconvert, job_id)

    first = reconcile_jobs(settings, older_than_s=0)
    second = reconcile_jobs(settings, older_than_s=0)
    record = store.get_job(job_id)
    completed = [kwargs for name, kwargs in recorded if name == "mc_tasks.job_completed"]

    assert first.finalized == [job_id]
    assert second.checked == 0
    assert names(recorded, job_id) == ["mc_tasks.job_completed"]
    assert completed[0]["reference"] == "rec-complete"
    assert completed[0]["outputs"].groups[0].type == "FILE_GROUP_SETTINGS"
    assert completed[0]["outputs"].groups[0].outputs[0].width == 160
    assert record is not None
    assert record.status == "COMPLETE"


def test_real_event_after_reconcile_is_duplicate(settings: Settings, mediaconvert: Any,
                                                 recorded: list[tuple[str, dict[str, Any]]]
                                                 ) -> None:
    store = JobStore(settings)
    job_id = create_job(mediaconvert, "rec-late-event")
    store.record_submitted(job_id, "rec-late-event")
    wait_for_final(mediaconvert, job_id)
    reconcile_jobs(settings, older_than_s=0)

    late = parse_message(json.dumps(samples.complete_hls(job_id)))
    dispatch = handle_event(store, late, sender="test")

    assert dispatch.transition.outcome == "duplicate"
    assert names(recorded, job_id) == ["mc_tasks.job_completed"]


def test_failed_job_reconciled_with_error(settings: Settings, mediaconvert: Any,
                                          recorded: list[tuple[str, dict[str, Any]]]) -> None:
    store = JobStore(settings)
    job_id = create_job(mediaconvert, "rec-error", input_uri=f"s3://{BUCKET}/in/missing.mp4")
    store.record_submitted(job_id, "rec-error")
    job = wait_for_final(mediaconvert, job_id)

    reconcile_jobs(settings, older_than_s=0)
    failed = [kwargs for name, kwargs in recorded if name == "mc_tasks.job_failed"]

    assert job["Status"] == "ERROR"
    assert names(recorded, job_id) == ["mc_tasks.job_failed"]
    assert failed[0]["error_code"] == job["ErrorCode"]
    assert failed[0]["error_message"] == job["ErrorMessage"]


def test_recent_jobs_not_checked(settings: Settings, mediaconvert: Any) -> None:
    store = JobStore(settings)
    store.record_submitted(samples.job_id(), "rec-recent")

    report = reconcile_jobs(settings, older_than_s=600)

    assert report.checked == 0


def test_unknown_job_counted_not_found(settings: Settings, mediaconvert: Any) -> None:
    store = JobStore(settings)
    job_id = samples.job_id()
    store.record_submitted(job_id, "rec-unknown")

    report = reconcile_jobs(settings, older_than_s=0)
    record = store.get_job(job_id)

    assert report.not_found == 1
    assert record is not None
    assert record.status == "SUBMITTED"


def test_cancel_submitted_job_fires_once(settings: Settings, mediaconvert: Any,
                                         recorded: list[tuple[str, dict[str, Any]]]) -> None:
    store = JobStore(settings)
    mediaconvert.update_queue(Name="Default", Status="PAUSED")
    try:
        job_id = create_job(mediaconvert, "rec-cancel")
        store.record_submitted(job_id, "rec-cancel")
        result = cancel_job(job_id, settings=settings)
    finally:
        mediaconvert.update_queue(Name="Default", Status="ACTIVE")
    late = parse_message(json.dumps(samples.canceled(job_id)))
    late_dispatch = handle_event(store, late, sender="test")
    job = mediaconvert.get_job(Id=job_id)["Job"]

    assert result.jobs[0].canceled is True
    assert result.jobs[0].status == "CANCELED"
    assert job["Status"] == "CANCELED"
    assert late_dispatch.transition.outcome == "duplicate"
    assert names(recorded, job_id) == ["mc_tasks.job_canceled"]
    assert result.to_dict() == {"jobs": [{"job_id": job_id, "canceled": True,
                                          "status": "CANCELED"}]}


def test_cancel_by_reference(settings: Settings, mediaconvert: Any,
                             recorded: list[tuple[str, dict[str, Any]]]) -> None:
    store = JobStore(settings)
    mediaconvert.update_queue(Name="Default", Status="PAUSED")
    try:
        job_ids = [create_job(mediaconvert, "rec-by-ref") for _ in range(2)]
        for job_id in job_ids:
            store.record_submitted(job_id, "rec-by-ref")
        result = cancel_job(reference="rec-by-ref", settings=settings)
    finally:
        mediaconvert.update_queue(Name="Default", Status="ACTIVE")

    assert sorted(job.job_id for job in result.jobs) == sorted(job_ids)
    assert all(job.status == "CANCELED" for job in result.jobs)
    assert all(names(recorded, job_id) == ["mc_tasks.job_canceled"] for job_id in job_ids)


def test_cancel_finished_job_applies_real_state(settings: Settings, mediaconvert: Any,
                                                recorded: list[tuple[str, dict[str, Any]]]
                                                ) -> None:
    store = JobStore(settings)
    job_id = create_job(mediaconvert, "rec-too-late")
    store.record_submitted(job_id, "rec-too-late")
    wait_for_final(mediaconvert, job_id)

    result = cancel_job(job_id, settings=settings)

    assert result.jobs[0].canceled is False
    assert result.jobs[0].status == "COMPLETE"
    assert names(recorded, job_id) == ["mc_tasks.job_completed"]


def test_cancel_unknown_job_raises_not_found(settings: Settings, mediaconvert: Any) -> None:
    with pytest.raises(MediaConvertNotFound):
        cancel_job(samples.job_id(), settings=settings)


def test_cancel_needs_one_selector(settings: Settings) -> None:
    with pytest.raises(InvalidJobError):
        cancel_job(settings=settings)
    with pytest.raises(InvalidJobError):
        cancel_job("1-a", reference="b", settings=settings)


def test_progressing_job_yields_progress_changes() -> None:
    job = {"Id": "1-abc", "Status": "PROGRESSING", "JobPercentComplete": 40,
           "CurrentPhase": "TRANSCODING", "UserMetadata": {REFERENCE_KEY: "r"}}

    changes = changes_from_get_job(job)

    assert [change.status for change in changes] == ["PROGRESSING", "STATUS_UPDATE"]
    assert changes[1].percent == 40
    assert changes[1].phase == "TRANSCODING"
    assert changes[0].reference == "r"


def test_submitted_job_yields_no_change() -> None:
    assert changes_from_get_job({"Id": "1-abc", "Status": "SUBMITTED"}) == []
