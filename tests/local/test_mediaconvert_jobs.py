"""Real transcodes on the local MediaConvert: outputs in S3, checked with ffprobe, and events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import (
    BUCKET,
    CLIP_DURATION_S,
    HLS_RENDITIONS,
    INPUT_URI,
    ROLE_ARN,
    EventLog,
    LocalStack,
    job_settings,
    make_clip,
    wait_for_final,
)

DESTINATION = f"s3://{BUCKET}/outputs/"
#: Allowed difference between an output's duration and the clip's, in seconds.
DURATION_TOLERANCE_S = 0.15
#: Seconds of the clip a test cancels while it transcodes; long enough to outlast the cancel.
LONG_CLIP_DURATION_S = 60


@pytest.fixture(scope="module")
def completed_job(stack: LocalStack, event_log: EventLog) -> dict[str, Any]:
    """A job with an MP4, a 3-rendition HLS group and thumbnails, run to its end."""
    job = stack.mediaconvert.create_job(
        Role=ROLE_ARN, Settings=job_settings(INPUT_URI, DESTINATION),
        UserMetadata={"ref": "clip-1"}, StatusUpdateInterval="SECONDS_10")["Job"]
    return wait_for_final(stack.mediaconvert, job["Id"])


def ffprobe(path: Path) -> dict[str, Any]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)], capture_output=True, text=True, check=True)
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def download(stack: LocalStack, key: str, directory: Path) -> Path:
    path = directory / key.rsplit("/", 1)[-1]
    stack.s3.download_file(BUCKET, key, str(path))
    return path


def stream(info: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(item for item in info["streams"] if item["codec_type"] == kind)


def output_keys(stack: LocalStack, prefix: str) -> list[str]:
    listing = stack.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_job_completes(completed_job: dict[str, Any]) -> None:
    assert completed_job["Status"] == "COMPLETE"
    assert completed_job["JobPercentComplete"] == 100


def test_mp4_output_is_h264_aac_at_requested_size(stack: LocalStack, completed_job: Any,
                                                  tmp_path: Path) -> None:
    info = ffprobe(download(stack, "outputs/mp4/clip_sd.mp4", tmp_path))

    video, audio = stream(info, "video"), stream(info, "audio")
    assert video["codec_name"] == "h264"
    assert (video["width"], video["height"]) == (256, 144)
    assert video["profile"] == "High"
    assert audio["codec_name"] == "aac"
    assert audio["sample_rate"] == "48000"
    assert abs(float(info["format"]["duration"]) - CLIP_DURATION_S) < DURATION_TOLERANCE_S


def test_hls_main_playlist_lists_every_rendition(stack: LocalStack, completed_job: Any,
                                                 tmp_path: Path) -> None:
    playlist = download(stack, "outputs/hls/clip.m3u8", tmp_path).read_text()

    stream_infs = [line for line in playlist.splitlines() if line.startswith("#EXT-X-STREAM-INF")]
    assert len(stream_infs) == len(HLS_RENDITIONS)
    for modifier, width, height, _ in HLS_RENDITIONS:
        line = playlist.splitlines()[playlist.splitlines().index(f"clip{modifier}.m3u8") - 1]
        assert f"RESOLUTION={width}x{height}" in line
        assert "BANDWIDTH=" in line


def test_hls_renditions_play_at_their_sizes(stack: LocalStack, completed_job: Any,
                                            tmp_path: Path) -> None:
    keys = output_keys(stack, "outputs/hls/")

    for modifier, width, height, _ in HLS_RENDITIONS:
        segments = [key for key in keys if key.startswith(f"outputs/hls/clip{modifier}_")]
        assert f"outputs/hls/clip{modifier}.m3u8" in keys
        assert segments[0] == f"outputs/hls/clip{modifier}_00001.ts"
        for key in segments:
            download(stack, key, tmp_path)
        playlist = download(stack, f"outputs/hls/clip{modifier}.m3u8", tmp_path)
        info = ffprobe(playlist)
        video = stream(info, "video")
        assert (video["width"], video["height"]) == (width, height)
        assert abs(float(info["format"]["duration"]) - CLIP_DURATION_S) < DURATION_TOLERANCE_S


def test_frame_capture_writes_numbered_jpegs(stack: LocalStack, completed_job: Any,
                                             tmp_path: Path) -> None:
    keys = output_keys(stack, "outputs/thumbs/")

    assert keys[0] == "outputs/thumbs/clip_thumb.0000000.jpg"
    assert len(keys) >= CLIP_DURATION_S
    info = ffprobe(download(stack, keys[-1], tmp_path))
    assert stream(info, "video")["codec_name"] == "mjpeg"
    assert (stream(info, "video")["width"], stream(info, "video")["height"]) == (160, 90)


def test_get_job_reports_output_sizes(completed_job: dict[str, Any]) -> None:
    groups = completed_job["OutputGroupDetails"]

    hls_sizes = [(output["VideoDetails"]["WidthInPx"], output["VideoDetails"]["HeightInPx"])
                 for output in groups[1]["OutputDetails"]]
    assert len(groups) == 3
    assert hls_sizes == [(width, height) for _, width, height, _ in HLS_RENDITIONS]


def test_events_follow_job_through_its_states(completed_job: dict[str, Any],
                                              event_log: EventLog) -> None:
    events = event_log.wait_for(completed_job["Id"], "COMPLETE")

    statuses = [event["detail"]["status"] for event in events]
    first = events[0]
    assert {"PROGRESSING", "INPUT_INFORMATION", "STATUS_UPDATE", "COMPLETE"} <= set(statuses)
    assert first["source"] == "aws.mediaconvert"
    assert first["detail-type"] == "MediaConvert Job State Change"
    assert first["resources"] == [completed_job["Arn"]]
    assert first["detail"]["queue"] == completed_job["Queue"]
    assert first["detail"]["accountId"] == "123456789012"
    assert first["detail"]["userMetadata"] == {"ref": "clip-1"}
    assert isinstance(first["detail"]["timestamp"], int)


def test_status_updates_report_phases(completed_job: dict[str, Any],
                                      event_log: EventLog) -> None:
    events = event_log.wait_for(completed_job["Id"], "COMPLETE")

    progress = [event["detail"]["jobProgress"] for event in events
                if event["detail"]["status"] == "STATUS_UPDATE"]
    phases = {item["currentPhase"] for item in progress}
    assert phases == {"PROBING", "TRANSCODING", "UPLOADING"}
    assert all(0 <= item["jobPercentComplete"] <= 100 for item in progress)
    assert all(item["retryCount"] == 0 for item in progress)
    assert all(set(item["phaseProgress"]) == phases for item in progress)


def test_complete_event_describes_output_groups(completed_job: dict[str, Any],
                                                event_log: EventLog) -> None:
    events = event_log.wait_for(completed_job["Id"], "COMPLETE")

    complete = next(event for event in events if event["detail"]["status"] == "COMPLETE")
    mp4, hls, thumbs = complete["detail"]["outputGroupDetails"]
    mp4_output = mp4["outputDetails"][0]
    assert mp4["type"] == "FILE_GROUP"
    assert mp4_output["outputFilePaths"] == [f"{DESTINATION}mp4/clip_sd.mp4"]
    assert abs(mp4_output["durationInMs"] - CLIP_DURATION_S * 1000) < 150
    assert mp4_output["videoDetails"]["widthInPx"] == 256
    assert mp4_output["videoDetails"]["heightInPx"] == 144
    assert mp4_output["videoDetails"]["averageBitrate"] > 0
    assert hls["type"] == "HLS_GROUP"
    assert hls["playlistFilePaths"] == [f"{DESTINATION}hls/clip.m3u8"]
    assert [output["outputFilePaths"] for output in hls["outputDetails"]] == [
        [f"{DESTINATION}hls/clip{modifier}.m3u8"] for modifier, *_ in HLS_RENDITIONS]
    assert thumbs["type"] == "FILE_GROUP"
    assert len(thumbs["outputDetails"][0]["outputFilePaths"]) == 1
    assert thumbs["outputDetails"][0]["outputFilePaths"][0].endswith(".jpg")


def test_last_frame_capture_is_the_listed_one(stack: LocalStack, completed_job: Any,
                                              event_log: EventLog) -> None:
    events = event_log.wait_for(completed_job["Id"], "COMPLETE")

    complete = next(event for event in events if event["detail"]["status"] == "COMPLETE")
    listed = complete["detail"]["outputGroupDetails"][2]["outputDetails"][0]["outputFilePaths"]
    assert listed == [f"s3://{BUCKET}/{output_keys(stack, 'outputs/thumbs/')[-1]}"]


def test_cancel_complete_job_conflicts(stack: LocalStack, completed_job: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.cancel_job(Id=completed_job["Id"])

    assert excinfo.value.response["Error"]["Code"] == "ConflictException"


def test_missing_input_ends_in_error_event(stack: LocalStack, event_log: EventLog) -> None:
    missing = f"s3://{BUCKET}/inputs/missing.mp4"
    job = stack.mediaconvert.create_job(Role=ROLE_ARN,
                                        Settings=job_settings(missing, DESTINATION))["Job"]

    final = wait_for_final(stack.mediaconvert, job["Id"])
    events = event_log.wait_for(job["Id"], "ERROR")

    error = next(event for event in events if event["detail"]["status"] == "ERROR")["detail"]
    assert final["Status"] == "ERROR"
    assert final["ErrorCode"] == 1010
    assert missing in final["ErrorMessage"]
    assert error["errorCode"] == 1010
    assert missing in error["errorMessage"]


def test_job_canceled_while_submitted_sends_no_event(stack: LocalStack,
                                                     event_log: EventLog) -> None:
    client = stack.mediaconvert
    client.update_queue(Name="Default", Status="PAUSED")
    try:
        canceled = client.create_job(Role=ROLE_ARN,
                                     Settings=job_settings(INPUT_URI, "s3://media/c/"))["Job"]
        client.cancel_job(Id=canceled["Id"])
    finally:
        client.update_queue(Name="Default", Status="ACTIVE")
    # A job submitted afterwards runs on the same worker, so once its final
    # event arrived, any event of the canceled job would have been sent.
    later = client.create_job(Role=ROLE_ARN, Settings=job_settings(
        f"s3://{BUCKET}/inputs/missing.mp4", "s3://media/c/"))["Job"]
    wait_for_final(client, later["Id"])
    event_log.wait_for(later["Id"], "ERROR")

    assert event_log.for_job(canceled["Id"]) == []


def test_cancel_progressing_job_stops_it(stack: LocalStack, event_log: EventLog,
                                         tmp_path: Path) -> None:
    long_clip = make_clip(tmp_path / "long.mp4", duration_s=LONG_CLIP_DURATION_S)
    stack.s3.upload_file(str(long_clip), BUCKET, "inputs/long.mp4")
    client = stack.mediaconvert
    job = client.create_job(Role=ROLE_ARN, Settings=job_settings(
        f"s3://{BUCKET}/inputs/long.mp4", "s3://media/long/"))["Job"]
    event_log.wait_for(job["Id"], "PROGRESSING")

    client.cancel_job(Id=job["Id"])

    final = wait_for_final(client, job["Id"])
    events = event_log.wait_for(job["Id"], "CANCELED")
    assert final["Status"] == "CANCELED"
    assert "COMPLETE" not in [event["detail"]["status"] for event in events]


def test_percent_sign_in_input_name(stack: LocalStack, tmp_path: Path) -> None:
    key = "inputs/100% clip.mp4"
    stack.s3.upload_file(str(make_clip(tmp_path / "clip.mp4", duration_s=1)), BUCKET, key)
    destination = f"s3://{BUCKET}/percent/"

    job = stack.mediaconvert.create_job(
        Role=ROLE_ARN, Settings=job_settings(f"s3://{BUCKET}/{key}", destination))["Job"]
    finished = wait_for_final(stack.mediaconvert, job["Id"])

    assert finished["Status"] == "COMPLETE", finished.get("ErrorMessage")
    keys = output_keys(stack, "percent/")
    assert "percent/mp4/100% clip_sd.mp4" in keys
    assert "percent/hls/100% clip.m3u8" in keys
    assert "percent/hls/100% clip_180p.m3u8" in keys
    assert "percent/thumbs/100% clip_thumb.0000000.jpg" in keys
