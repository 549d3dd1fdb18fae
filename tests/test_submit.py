"""submit_transcode and get_queue_status against the local MediaConvert, moto and real Redis.

The jobs' inputs are never uploaded, so the local server fails each job soon
after it starts; these tests look only at what CreateJob recorded.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ReadTimeoutError

from mc_tasks.clients import get_client
from mc_tasks.errors import InvalidJobError, MediaConvertBadRequest, MediaConvertNotFound
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY
from mc_tasks.presets import NAMED_PRESETS, Mp4Preset
from mc_tasks.settings import Settings
from mc_tasks.store import JobStore
from mc_tasks.submissions import SubmissionStore
from mc_tasks.submit import SubmitResult, get_queue_status, submit_transcode
from tests.conftest import TEST_REDIS_URL

INPUT_URI = "s3://media-in/uploads/my clip+1 été.mp4"
DESTINATION = "s3://media-out/videos"
#: Lost-response rounds in the duplicate test.
LOST_RESPONSE_ROUNDS = 20
#: Threads that submit the same submission at once.
CONCURRENT_ATTEMPTS = 4


@pytest.fixture
def mc_settings(settings: Settings, local_mediaconvert: str) -> Settings:
    return settings


@pytest.fixture
def create_job_calls(mc_settings: Settings) -> Iterator[list[str]]:
    """Record every CreateJob request the client sends (its ClientRequestToken)."""
    calls: list[str] = []
    client = get_client("mediaconvert", mc_settings)

    def count(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(params.get("ClientRequestToken", ""))

    client.meta.events.register("provide-client-params.mediaconvert.CreateJob", count,
                                unique_id="test-count-create-job")
    yield calls
    client.meta.events.unregister("provide-client-params.mediaconvert.CreateJob",
                                  unique_id="test-count-create-job")


def all_jobs(settings: Settings) -> list[dict[str, Any]]:
    client = get_client("mediaconvert", settings)
    jobs: list[dict[str, Any]] = []
    request: dict[str, Any] = {"MaxResults": 20}
    while True:
        page = client.list_jobs(**request)
        jobs.extend(dict(job) for job in page["Jobs"])
        if not page.get("NextToken"):
            return jobs
        request["NextToken"] = page["NextToken"]


def jobs_of(settings: Settings, submission_id: str) -> list[dict[str, Any]]:
    return [job for job in all_jobs(settings)
            if job.get("UserMetadata", {}).get(SUBMISSION_KEY) == submission_id]


def age_pending_record(settings: Settings, submission_id: str, age_s: float) -> None:
    """Make a pending record look as if its first attempt began ``age_s`` ago."""
    store = SubmissionStore(settings)
    record = store.get(submission_id)
    assert record is not None
    assert record.state == "pending"
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    connection.set(store.key(submission_id),
                   json.dumps({"state": "pending", "since": time.time() - age_s}), ex=600)
    connection.close()


def raise_read_timeout(**kwargs: Any) -> None:
    raise ReadTimeoutError(endpoint_url="http://127.0.0.1/2017-08-29/jobs")


def test_submit_creates_job_with_metadata(mc_settings: Settings,
                                          submitted: list[dict[str, Any]]) -> None:
    result = submit_transcode(INPUT_URI, DESTINATION, reference="video:42",
                              user_metadata={"tenant": "acme"}, settings=mc_settings)

    job = get_client("mediaconvert", mc_settings).get_job(Id=result.job_id)["Job"]
    metadata = job["UserMetadata"]
    assert result.created is True
    assert metadata[REFERENCE_KEY] == "video:42"
    assert metadata[APPLICATION_KEY] == mc_settings.application
    assert metadata[SUBMISSION_KEY] == result.submission_id
    assert metadata["tenant"] == "acme"
    assert job["ClientRequestToken"] == result.submission_id
    assert job["Queue"] == result.queue
    assert result.queue.endswith(":queues/Default")
    assert job["Settings"]["Inputs"][0]["FileInput"] == INPUT_URI
    assert len(submitted) == 1
    assert submitted[0]["job_id"] == result.job_id
    assert submitted[0]["reference"] == "video:42"
    assert submitted[0]["queue"] == result.queue
    assert submitted[0]["user_metadata"] == metadata


def test_outputs_go_under_submission_prefix(mc_settings: Settings) -> None:
    result = submit_transcode(INPUT_URI, DESTINATION, settings=mc_settings)

    job = get_client("mediaconvert", mc_settings).get_job(Id=result.job_id)["Job"]
    groups: list[dict[str, Any]] = [dict(group) for group in job["Settings"]["OutputGroups"]]
    destinations = [
        value["Destination"]
        for group in groups
        for key, value in group["OutputGroupSettings"].items() if key.endswith("GroupSettings")
    ]
    assert result.destination == f"{DESTINATION}/{result.submission_id}/"
    assert destinations == [f"{result.destination}mp4/", f"{result.destination}hls/",
                            f"{result.destination}thumbnails/"]


def test_two_submissions_get_distinct_prefixes(mc_settings: Settings) -> None:
    first = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=mc_settings)
    second = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=mc_settings)

    assert first.job_id != second.job_id
    assert first.destination != second.destination


def test_same_submission_id_returns_same_job(mc_settings: Settings, create_job_calls: list[str],
                                             submitted: list[dict[str, Any]]) -> None:
    submission_id = uuid.uuid4().hex

    first = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                             submission_id=submission_id, settings=mc_settings)
    second = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                              submission_id=submission_id, settings=mc_settings)

    assert second.job_id == first.job_id
    assert first.created is True
    assert second.created is False
    assert second.destination == first.destination
    assert second.queue == first.queue
    assert len(create_job_calls) == 1
    assert len(jobs_of(mc_settings, submission_id)) == 1
    assert len(submitted) == 1


def test_lost_response_never_duplicates_job(mc_settings: Settings, create_job_calls: list[str],
                                            submitted: list[dict[str, Any]]) -> None:
    client = get_client("mediaconvert", mc_settings)
    submission_ids = [f"lost-{index}-{uuid.uuid4().hex[:8]}"
                      for index in range(LOST_RESPONSE_ROUNDS)]
    create_calls_on_late_retry = []

    for index, submission_id in enumerate(submission_ids):
        client.meta.events.register("after-call.mediaconvert.CreateJob", raise_read_timeout,
                                    unique_id="test-lose-response")
        try:
            with pytest.raises(ReadTimeoutError):
                submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                                 submission_id=submission_id, settings=mc_settings)
        finally:
            client.meta.events.unregister("after-call.mediaconvert.CreateJob",
                                          unique_id="test-lose-response")

        late_retry = index % 2 == 1
        if late_retry:
            age_pending_record(mc_settings, submission_id, age_s=120.0)
        calls_before = len(create_job_calls)
        result = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                                  submission_id=submission_id, settings=mc_settings)
        if late_retry:
            create_calls_on_late_retry.append(len(create_job_calls) - calls_before)
        assert result.created is True

    counts = collections.Counter(
        job["UserMetadata"].get(SUBMISSION_KEY) for job in all_jobs(mc_settings))
    duplicates = sum(counts[submission_id] - 1 for submission_id in submission_ids)
    print(f"{LOST_RESPONSE_ROUNDS} lost CreateJob responses, "
          f"{sum(counts[s] for s in submission_ids)} jobs, {duplicates} duplicates")
    assert duplicates == 0
    assert all(counts[submission_id] == 1 for submission_id in submission_ids)
    assert create_calls_on_late_retry == [0] * (LOST_RESPONSE_ROUNDS // 2)
    assert len(submitted) == LOST_RESPONSE_ROUNDS


def test_late_retry_without_job_creates_one(mc_settings: Settings,
                                            create_job_calls: list[str]) -> None:
    submission_id = uuid.uuid4().hex
    SubmissionStore(mc_settings).mark_pending(submission_id)
    age_pending_record(mc_settings, submission_id, age_s=120.0)

    result = submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                              submission_id=submission_id, settings=mc_settings)

    assert result.created is True
    assert create_job_calls == [submission_id]
    assert len(jobs_of(mc_settings, submission_id)) == 1


def test_exported_job_file_is_submitted(mc_settings: Settings, tmp_path: Path) -> None:
    exported = {"Job": {
        "Id": "1700000000000-abcdef",
        "Status": "COMPLETE",
        "Settings": {
            "Inputs": [{"FileInput": "s3://console-bucket/original.mp4",
                        "AudioSelectors": {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}}}],
            "OutputGroups": [{
                "Name": "File Group",
                "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": {
                    "Destination": "s3://console-bucket/exports/"}},
                "Outputs": [{
                    "NameModifier": "_small",
                    "ContainerSettings": {"Container": "MP4"},
                    "VideoDescription": {"Width": 640, "Height": 360, "CodecSettings": {
                        "Codec": "H_264", "H264Settings": {"RateControlMode": "QVBR",
                                                           "MaxBitrate": 1_000_000}}},
                    "AudioDescriptions": [{"CodecSettings": {"Codec": "AAC", "AacSettings": {
                        "Bitrate": 96000, "CodingMode": "CODING_MODE_2_0",
                        "SampleRate": 48000}}}],
                }],
            }],
        },
    }}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(exported), encoding="utf-8")

    result = submit_transcode(INPUT_URI, DESTINATION, job_settings=path, settings=mc_settings)

    job = get_client("mediaconvert", mc_settings).get_job(Id=result.job_id)["Job"]
    group_settings = job["Settings"]["OutputGroups"][0]["OutputGroupSettings"]
    assert job["Settings"]["Inputs"][0]["FileInput"] == INPUT_URI
    assert group_settings["FileGroupSettings"]["Destination"] == f"{result.destination}exports/"


def test_queue_status_of_default_queue(mc_settings: Settings) -> None:
    status = get_queue_status(mc_settings)

    assert status.name == "Default"
    assert status.status == "ACTIVE"
    assert status.arn.endswith(":queues/Default")
    assert status.submitted_jobs_count >= 0
    assert status.progressing_jobs_count >= 0
    assert status.to_dict()["name"] == "Default"


def test_queue_status_shows_paused_queue(mc_settings: Settings) -> None:
    client = get_client("mediaconvert", mc_settings)
    client.update_queue(Name="Default", Status="PAUSED")
    try:
        status = get_queue_status(mc_settings, queue=status_arn(mc_settings))
    finally:
        client.update_queue(Name="Default", Status="ACTIVE")

    assert status.status == "PAUSED"
    assert status.paused is True


def status_arn(settings: Settings) -> str:
    return get_queue_status(settings).arn


def test_unknown_queue_is_not_found(mc_settings: Settings) -> None:
    with pytest.raises(MediaConvertNotFound) as caught:
        get_queue_status(mc_settings, queue="no-such-queue")

    assert caught.value.operation == "GetQueue"


def test_hop_destinations_reach_create_job(mc_settings: Settings) -> None:
    hops = [{"Queue": "arn:aws:mediaconvert:us-east-1:123456789012:queues/Backup",
             "WaitMinutes": 10}]

    # The local MediaConvert rejects HopDestinations by name, which shows the
    # field was sent in the request.
    with pytest.raises(MediaConvertBadRequest, match="HopDestinations"):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], hop_destinations=hops,
                         settings=mc_settings)


def test_invalid_hop_destination_fails_before_aws(mc_settings: Settings,
                                                   create_job_calls: list[str]) -> None:
    with pytest.raises(InvalidJobError, match="WaitMinutes"):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                         hop_destinations=[{"Queue": "Default", "WaitMinutes": "ten"}],
                         settings=mc_settings)

    assert create_job_calls == []


def test_concurrent_attempts_create_one_job(mc_settings: Settings,
                                            create_job_calls: list[str]) -> None:
    submission_id = uuid.uuid4().hex
    start = threading.Barrier(CONCURRENT_ATTEMPTS)
    results: list[SubmitResult] = []

    def attempt() -> None:
        start.wait(10)
        results.append(submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                                        submission_id=submission_id, settings=mc_settings))

    threads = [threading.Thread(target=attempt) for _ in range(CONCURRENT_ATTEMPTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == CONCURRENT_ATTEMPTS
    assert len({result.job_id for result in results}) == 1
    assert len(jobs_of(mc_settings, submission_id)) == 1
    assert set(create_job_calls) <= {submission_id}
    record = SubmissionStore(mc_settings).get(submission_id)
    assert record is not None
    assert record.created
    assert record.job_id == results[0].job_id


def test_changed_named_preset_is_rechecked(mc_settings: Settings,
                                           create_job_calls: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=mc_settings)
    monkeypatch.setitem(NAMED_PRESETS, "mp4", Mp4Preset(width=1280.0))  # type: ignore[arg-type]

    with pytest.raises(InvalidJobError, match="Width"):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=mc_settings)

    assert len(create_job_calls) == 1


def test_submit_stores_job_and_record(mc_settings: Settings) -> None:
    result = submit_transcode(INPUT_URI, DESTINATION, reference="video:43",
                              settings=mc_settings)

    record = SubmissionStore(mc_settings).get(result.submission_id)
    job = JobStore(mc_settings).get_job(result.job_id)
    assert record is not None
    assert (record.state, record.job_id, record.queue, record.destination) == (
        "created", result.job_id, result.queue, result.destination)
    assert job is not None
    assert job.status == "SUBMITTED"
    assert job.reference == "video:43"
    assert job.submission_id == result.submission_id
    assert job.queue == result.queue


def test_non_string_template_fails_early(mc_settings: Settings,
                                         create_job_calls: list[str]) -> None:
    with pytest.raises(InvalidJobError, match="JobTemplate"):
        submit_transcode(INPUT_URI, DESTINATION, job_template=42,  # type: ignore[arg-type]
                         settings=mc_settings)

    assert create_job_calls == []


def test_invalid_hop_after_valid_one_fails_early(mc_settings: Settings,
                                                 create_job_calls: list[str]) -> None:
    with pytest.raises(MediaConvertBadRequest, match="HopDestinations"):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                         hop_destinations=[{"Queue": "Default", "WaitMinutes": 5}],
                         settings=mc_settings)
    assert len(create_job_calls) == 1

    with pytest.raises(InvalidJobError, match="WaitMinutes"):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"],
                         hop_destinations=[{"Queue": "Default", "WaitMinutes": "ten"}],
                         settings=mc_settings)

    assert len(create_job_calls) == 1
