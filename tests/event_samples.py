"""MediaConvert job state change events shaped like the examples in AWS's MediaConvert guide.

Each builder returns the EventBridge envelope as a dict; ``json.dumps`` it to
get the SQS message body an EventBridge target delivers.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY

ACCOUNT_ID = "111122223333"
REGION = "us-east-1"
QUEUE_ARN = f"arn:aws:mediaconvert:{REGION}:{ACCOUNT_ID}:queues/Default"
BASE_TIMESTAMP_MS = 1_671_476_832_075

_counter = itertools.count()


def job_id() -> str:
    """Return a job id in MediaConvert's format (epoch ms, dash, six characters)."""
    return f"{BASE_TIMESTAMP_MS + next(_counter)}-{uuid.uuid4().hex[:6]}"


def envelope(status: str, job: str, *, timestamp_ms: int = BASE_TIMESTAMP_MS,
             event_id: str | None = None, reference: str | None = "video-42",
             application: str | None = "mc_tasks", account: str | None = ACCOUNT_ID,
             region: str = REGION, detail_type: str = "MediaConvert Job State Change",
             source: str = "aws.mediaconvert", **detail: Any) -> dict[str, Any]:
    """Return an event envelope; ``account=None`` drops ``account`` like moto does."""
    metadata: dict[str, str] = {}
    if reference is not None:
        metadata[REFERENCE_KEY] = reference
    if application is not None:
        metadata[APPLICATION_KEY] = application
        metadata[SUBMISSION_KEY] = f"submission-{job}"
    event: dict[str, Any] = {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "time": "2022-12-19T19:07:12Z",
        "region": region,
        "resources": [f"arn:aws:mediaconvert:{region}:{ACCOUNT_ID}:jobs/{job}"],
        "detail": {
            "timestamp": timestamp_ms,
            "accountId": ACCOUNT_ID,
            "queue": QUEUE_ARN,
            "jobId": job,
            "status": status,
            "userMetadata": metadata,
            **detail,
        },
    }
    if account is not None:
        event["account"] = account
    return event


def progressing(job: str, **kwargs: Any) -> dict[str, Any]:
    return envelope("PROGRESSING", job, **kwargs)


def status_update(job: str, percent: int, phase: str = "TRANSCODING", **kwargs: Any
                  ) -> dict[str, Any]:
    progress = {
        "phaseProgress": {
            "PROBING": {"status": "COMPLETE", "percentComplete": 100},
            "TRANSCODING": {"status": "PROGRESSING", "percentComplete": percent},
            "UPLOADING": {"status": "PENDING", "percentComplete": 0},
        },
        "jobPercentComplete": percent,
        "currentPhase": phase,
        "retryCount": 0,
    }
    return envelope("STATUS_UPDATE", job, framesDecoded=353, jobProgress=progress, **kwargs)


def complete_hls(job: str, **kwargs: Any) -> dict[str, Any]:
    groups = [{
        "outputDetails": [
            {"outputFilePaths": ["s3://media-bucket/hls/mainv2.m3u8"], "durationInMs": 180041,
             "videoDetails": {"widthInPx": 426, "heightInPx": 240}},
            {"outputFilePaths": ["s3://media-bucket/hls/mainv1.m3u8"], "durationInMs": 180041,
             "videoDetails": {"widthInPx": 1280, "heightInPx": 720}},
        ],
        "type": "HLS_GROUP",
        "playlistFilePaths": ["s3://media-bucket/hls/main.m3u8"],
    }]
    return envelope("COMPLETE", job, paddingInserted=0, outputGroupDetails=groups,
                    warnings=[{"code": 230001, "count": 1}], **kwargs)


def complete_file_with_frames(job: str, **kwargs: Any) -> dict[str, Any]:
    groups = [
        {"outputDetails": [{"outputFilePaths": ["s3://media-bucket/frames/file.0000036.jpg"],
                            "durationInMs": 185000,
                            "videoDetails": {"widthInPx": 1280, "heightInPx": 720}}],
         "type": "FILE_GROUP"},
        {"outputDetails": [{"outputFilePaths": ["s3://media-bucket/file/file.mp4"],
                            "durationInMs": 180041,
                            "videoDetails": {"widthInPx": 1280, "heightInPx": 720}}],
         "type": "FILE_GROUP"},
    ]
    return envelope("COMPLETE", job, outputGroupDetails=groups, **kwargs)


def error(job: str, code: int = 1040, message: str = "Example error message",
          **kwargs: Any) -> dict[str, Any]:
    return envelope("ERROR", job, errorCode=code, errorMessage=message, **kwargs)


def canceled(job: str, **kwargs: Any) -> dict[str, Any]:
    return envelope("CANCELED", job, **kwargs)


def input_information(job: str, **kwargs: Any) -> dict[str, Any]:
    inputs = [{
        "id": 1,
        "uri": "s3://media-bucket/in/file.mp4",
        "audio": [{"channels": 2, "codec": "AAC", "language": "UND", "sampleRate": 44100,
                   "streamId": 2}],
        "video": [{"bitDepth": 8, "codec": "H_264", "colorFormat": "YUV_420", "fourCC": "avc1",
                   "frameRate": 24, "height": 1080, "interlaceMode": "PROGRESSIVE",
                   "sar": "1:1", "standard": "UNSPECIFIED", "streamId": 1, "width": 1920}],
    }]
    return envelope("INPUT_INFORMATION", job, inputDetails=inputs, **kwargs)


def new_warning(job: str, code: str = "230001", message: str = "Example warning message",
                **kwargs: Any) -> dict[str, Any]:
    return envelope("NEW_WARNING", job, warningCode=code, warningMessage=message, **kwargs)


def queue_hop(job: str, **kwargs: Any) -> dict[str, Any]:
    return envelope("QUEUE_HOP", job, previousQueue=QUEUE_ARN.replace("Default", "Alternate"),
                    priority=0, previousPriority=0, **kwargs)


def sns_wrapped(event: dict[str, Any]) -> dict[str, Any]:
    """Return the SNS notification an SNS-to-SQS subscription delivers for ``event``."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:mediaconvert-events",
        "Message": json.dumps(event),
        "Timestamp": "2022-12-19T19:07:12.000Z",
        "SignatureVersion": "1",
    }
