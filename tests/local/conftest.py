"""Fixtures for the local MediaConvert: moto's server, the local server, a clip, an event queue."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support import local_aws_servers

ROLE_ARN = "arn:aws:iam::123456789012:role/MediaConvertRole"
BUCKET = "media"
INPUT_KEY = "inputs/clip.mp4"
INPUT_URI = f"s3://{BUCKET}/{INPUT_KEY}"
CLIP_DURATION_S = 2
#: Seconds a test waits for a job to reach a final state.
JOB_TIMEOUT_S = 30.0
FINAL_STATUSES = ("COMPLETE", "ERROR", "CANCELED")


@dataclass
class LocalStack:
    moto_url: str
    mediaconvert_url: str
    mediaconvert: Any
    s3: Any
    log_dir: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """moto's server and the local MediaConvert, with a bucket holding a 2-second clip."""
    log_dir = tmp_path_factory.mktemp("logs")
    work_dir = tmp_path_factory.mktemp("work")
    with local_aws_servers(log_dir, work_dir=work_dir) as (moto_url, url):
        s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        clip = make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")
        s3.upload_file(str(clip), BUCKET, INPUT_KEY)
        client = boto3.client("mediaconvert", endpoint_url=url, region_name="us-east-1")
        yield LocalStack(moto_url, url, client, s3, log_dir)


def make_clip(path: Path, duration_s: int = CLIP_DURATION_S) -> Path:
    """Write a 320x180, 25 fps H.264/AAC clip of ``duration_s`` seconds to ``path``."""
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate=25:duration={duration_s}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={duration_s}",
         "-preset", "ultrafast",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


def h264_video(width: int, height: int, max_bitrate: int) -> dict[str, Any]:
    return {
        "Width": width,
        "Height": height,
        "CodecSettings": {"Codec": "H_264", "H264Settings": {
            "RateControlMode": "QVBR",
            "MaxBitrate": max_bitrate,
            "QvbrSettings": {"QvbrQualityLevel": 7},
            "GopSize": 1,
            "GopSizeUnits": "SECONDS",
            "CodecProfile": "MAIN",
            "SceneChangeDetect": "TRANSITION_DETECTION",
        }},
    }


AAC_AUDIO = [{"AudioSourceName": "Audio Selector 1", "CodecSettings": {
    "Codec": "AAC",
    "AacSettings": {"Bitrate": 96000, "CodingMode": "CODING_MODE_2_0", "SampleRate": 48000},
}}]

#: (NameModifier, width, height, max bitrate) of each HLS rendition.
HLS_RENDITIONS = [("_180p", 320, 180, 600_000), ("_144p", 256, 144, 400_000),
                  ("_90p", 160, 90, 200_000)]


def job_settings(input_uri: str, destination: str) -> dict[str, Any]:
    """Settings with an MP4, a 3-rendition HLS group and 1-per-second thumbnails."""
    return copy.deepcopy({
        "Inputs": [{"FileInput": input_uri, "TimecodeSource": "ZEROBASED", "VideoSelector": {},
                    "AudioSelectors": {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}}}],
        "OutputGroups": [
            {"Name": "File Group",
             "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS",
                                     "FileGroupSettings": {"Destination": f"{destination}mp4/"}},
             "Outputs": [{"NameModifier": "_sd", "ContainerSettings": {"Container": "MP4"},
                          "VideoDescription": {"Width": 256, "Height": 144, "CodecSettings": {
                              "Codec": "H_264",
                              "H264Settings": {"RateControlMode": "CBR", "Bitrate": 300_000,
                                               "CodecProfile": "HIGH",
                                               "CodecLevel": "LEVEL_3"}}},
                          "AudioDescriptions": AAC_AUDIO}]},
            {"Name": "Apple HLS",
             "OutputGroupSettings": {"Type": "HLS_GROUP_SETTINGS", "HlsGroupSettings": {
                 "Destination": f"{destination}hls/", "SegmentLength": 1,
                 "MinSegmentLength": 0}},
             "Outputs": [{"NameModifier": modifier, "ContainerSettings": {"Container": "M3U8"},
                          "VideoDescription": h264_video(width, height, bitrate),
                          "AudioDescriptions": AAC_AUDIO}
                         for modifier, width, height, bitrate in HLS_RENDITIONS]},
            {"Name": "Thumbnails",
             "OutputGroupSettings": {"Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": {
                 "Destination": f"{destination}thumbs/"}},
             "Outputs": [{"NameModifier": "_thumb", "ContainerSettings": {"Container": "RAW"},
                          "VideoDescription": {"Width": 160, "Height": 90, "CodecSettings": {
                              "Codec": "FRAME_CAPTURE",
                              "FrameCaptureSettings": {"FramerateNumerator": 1,
                                                       "FramerateDenominator": 1,
                                                       "MaxCaptures": 10, "Quality": 80}}}}]},
        ],
    })


def wait_for_final(client: Any, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> dict[str, Any]:
    """Poll GetJob until the job is COMPLETE, ERROR or CANCELED; return the job."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get_job(Id=job_id)["Job"]
        if job["Status"] in FINAL_STATUSES:
            return job
        time.sleep(0.2)
    raise AssertionError(f"Job {job_id} did not finish within {timeout_s} s")


@dataclass
class EventLog:
    """Job state change events received from an SQS queue fed by an EventBridge rule."""

    sqs: Any
    queue_url: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def for_job(self, job_id: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["detail"]["jobId"] == job_id]

    def wait_for(self, job_id: str, status: str, timeout_s: float = JOB_TIMEOUT_S
                 ) -> list[dict[str, Any]]:
        """Receive until ``job_id`` has an event with ``status``; return that job's events."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(event["detail"]["status"] == status for event in self.for_job(job_id)):
                return self.for_job(job_id)
            response = self.sqs.receive_message(QueueUrl=self.queue_url,
                                                MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in response.get("Messages", []):
                self.events.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])
        raise AssertionError(f"No {status} event for job {job_id} within {timeout_s} s")


@pytest.fixture(scope="module")
def event_log(stack: LocalStack) -> EventLog:
    """An SQS queue that an EventBridge rule fills with MediaConvert job events."""
    sqs = boto3.client("sqs", endpoint_url=stack.moto_url, region_name="us-east-1")
    events = boto3.client("events", endpoint_url=stack.moto_url, region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="mediaconvert-test-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"]
                                         )["Attributes"]["QueueArn"]
    events.put_rule(Name="mediaconvert-test-events", EventPattern=json.dumps({
        "source": ["aws.mediaconvert"], "detail-type": ["MediaConvert Job State Change"]}))
    events.put_targets(Rule="mediaconvert-test-events", Targets=[{"Id": "sqs", "Arn": queue_arn}])
    return EventLog(sqs, queue_url)
