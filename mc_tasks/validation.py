"""Checks run on a job request before any call to MediaConvert.

Every check raises :class:`~mc_tasks.errors.InvalidJobError` naming the bad
value and what to change. Enumerations and ranges (status update intervals,
acceleration modes, priority) come from botocore's MediaConvert service model,
so they follow the installed botocore instead of a copied list.
:func:`validate_create_job_request` checks a whole CreateJob request against
that model: a misspelled field fails here instead of in MediaConvert.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.validate import ParamValidator

from mc_tasks.errors import InvalidJobError
from mc_tasks.metadata import MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_CHARS

if TYPE_CHECKING:
    from botocore.model import OperationModel, Shape, StructureShape

#: S3 bucket name limits (Amazon S3 general purpose bucket naming rules).
S3_BUCKET_MIN_CHARS = 3
S3_BUCKET_MAX_CHARS = 63
#: Maximum length of an S3 object key, in bytes of its UTF-8 encoding.
S3_KEY_MAX_BYTES = 1024
#: AWS resource tag limits.
TAG_KEY_MAX_CHARS = 128
TAG_VALUE_MAX_CHARS = 256

_S3_SCHEME = "s3://"
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_QUEUE_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:mediaconvert:(?P<region>[a-z0-9-]+):\d{12}:queues/"
    r"(?P<name>[A-Za-z0-9_-]{1,128})$"
)
# MediaConvert documents no character set for UserMetadata. This is the set
# AWS allows in resource tags, which also passes through EventBridge events.
_METADATA_TEXT = re.compile(r"^[A-Za-z0-9_.:/=+\-@ ]*$")
_METADATA_CHARACTERS = "letters, digits, spaces and _ . : / = + - @"
#: botocore's validator keeps no state between calls, so one instance serves every check.
_VALIDATOR = ParamValidator()


@dataclass(frozen=True)
class S3Location:
    """An S3 URI split into bucket and key. ``key`` is empty for a bucket root."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"{_S3_SCHEME}{self.bucket}/{self.key}"


def parse_s3_uri(uri: str, *, what: str = "S3 URI") -> S3Location:
    """Split ``s3://bucket/key`` into bucket and key, checking the bucket name.

    The key is returned exactly as given: spaces, ``+`` and non-ASCII
    characters are valid in S3 keys and are not URL-decoded.
    """
    if not isinstance(uri, str) or not uri.startswith(_S3_SCHEME):
        raise InvalidJobError(
            f"Invalid {what} {uri!r}: use the form s3://bucket/key (scheme s3://)."
        )
    bucket, _, key = uri[len(_S3_SCHEME):].partition("/")
    validate_bucket_name(bucket, uri=uri, what=what)
    if len(key.encode("utf-8")) > S3_KEY_MAX_BYTES:
        raise InvalidJobError(
            f"Invalid {what} {uri!r}: the key is longer than {S3_KEY_MAX_BYTES} bytes. "
            "Use a shorter key."
        )
    return S3Location(bucket=bucket, key=key)


def validate_bucket_name(bucket: str, *, uri: str, what: str = "S3 URI") -> None:
    """Check ``bucket`` against the S3 bucket naming rules."""
    problem = None
    if not S3_BUCKET_MIN_CHARS <= len(bucket) <= S3_BUCKET_MAX_CHARS:
        problem = (f"the bucket name {bucket!r} has {len(bucket)} characters, "
                   f"expected {S3_BUCKET_MIN_CHARS} to {S3_BUCKET_MAX_CHARS}")
    elif not _BUCKET_NAME.match(bucket):
        problem = (f"the bucket name {bucket!r} may contain only lowercase letters, digits, "
                   "dots and hyphens, and must start and end with a letter or digit")
    elif ".." in bucket:
        problem = f"the bucket name {bucket!r} contains two adjacent dots"
    elif _IP_ADDRESS.match(bucket):
        problem = f"the bucket name {bucket!r} is formatted as an IP address"
    if problem is not None:
        raise InvalidJobError(f"Invalid {what} {uri!r}: {problem}. Use a valid S3 bucket name.")


def validate_input_uri(uri: str) -> S3Location:
    """Check the URI of an input file: an S3 object, so the key is required."""
    location = parse_s3_uri(uri, what="input URI")
    if not location.key or location.key.endswith("/"):
        raise InvalidJobError(
            f"Invalid input URI {uri!r}: it names a folder, not a file. "
            "Use s3://bucket/path/to/file.mp4."
        )
    return location


def normalize_destination(destination: str) -> str:
    """Check an output destination ``s3://bucket[/prefix]`` and return it ending with ``/``."""
    parse_s3_uri(destination, what="destination")
    return destination if destination.endswith("/") else f"{destination}/"


def validate_role_arn(role_arn: str) -> str:
    """Check the format of the IAM role ARN that MediaConvert assumes."""
    if not _ROLE_ARN.match(role_arn):
        raise InvalidJobError(
            f"Invalid role ARN {role_arn!r}: use an IAM role ARN such as "
            "arn:aws:iam::123456789012:role/MediaConvertRole."
        )
    return role_arn


def queue_name(queue: str, *, region: str) -> str:
    """Return the queue name of a MediaConvert queue name or ARN.

    An ARN must be in ``region``, the region of the MediaConvert endpoint used.
    """
    if _QUEUE_NAME.match(queue):
        return queue
    match = _QUEUE_ARN.match(queue)
    if match is None:
        raise InvalidJobError(
            f"Invalid MediaConvert queue {queue!r}: use a queue name such as Default or an ARN "
            "such as arn:aws:mediaconvert:us-east-1:123456789012:queues/Default."
        )
    if match.group("region") != region:
        raise InvalidJobError(
            f"MediaConvert queue {queue!r} is in region {match.group('region')}, but jobs are "
            f"submitted in {region}: use a queue of {region} or set AWS_DEFAULT_REGION to "
            f"{match.group('region')}."
        )
    return match.group("name")


def validate_user_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Check MediaConvert's UserMetadata limits and return a plain dict copy.

    Limits: at most 10 pairs, keys of 1-128 and values of up to 256 characters,
    letters, digits, spaces and ``_ . : / = + - @`` only.
    """
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidJobError(
            f"UserMetadata has {len(metadata)} pairs, more than MediaConvert's limit of "
            f"{MAX_METADATA_PAIRS} (mc_tasks uses up to 3): remove some keys "
            f"({', '.join(sorted(metadata))})."
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidJobError(
                f"UserMetadata pair {key!r}: {value!r} is not a pair of strings. "
                "Convert keys and values to str."
            )
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise InvalidJobError(
                f"UserMetadata key {key[:40]!r} has {len(key)} characters, but keys must have 1 to "
                f"{MAX_METADATA_KEY_CHARS}."
            )
        if len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidJobError(
                f"UserMetadata value of key {key!r} has {len(value)} characters, more than the "
                f"limit of {MAX_METADATA_VALUE_CHARS}: store a shorter reference."
            )
        for text, role in ((key, "key"), (value, "value")):
            if not _METADATA_TEXT.match(text):
                raise InvalidJobError(
                    f"UserMetadata {role} {text!r} (key {key!r}) contains characters that are "
                    f"not allowed: use only {_METADATA_CHARACTERS}."
                )
    return dict(metadata)


def validate_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Check AWS resource tag limits: keys of 1-128 and values of up to 256 characters."""
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidJobError(
                f"Tag {key!r}: {value!r} is not a pair of strings. Convert keys and values to str."
            )
        if not 1 <= len(key) <= TAG_KEY_MAX_CHARS or key.lower().startswith("aws:"):
            raise InvalidJobError(
                f"Invalid tag key {key[:40]!r}: use 1 to {TAG_KEY_MAX_CHARS} characters, "
                "not starting with aws: (reserved by AWS)."
            )
        if len(value) > TAG_VALUE_MAX_CHARS:
            raise InvalidJobError(
                f"Value of tag {key!r} has {len(value)} characters, more than the limit of "
                f"{TAG_VALUE_MAX_CHARS}."
            )
    return dict(tags)


def validate_priority(priority: int) -> int:
    """Check a job priority against the range of botocore's model (-50 to 50)."""
    shape = _create_job_member("Priority")
    low, high = int(shape.metadata["min"]), int(shape.metadata["max"])
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise InvalidJobError(
            f"Invalid priority {priority!r}: use an integer from {low} to {high}."
        )
    return priority


def validate_status_update_interval(interval: str) -> str:
    """Check a StatusUpdateInterval against the enum of botocore's model."""
    return _check_enum(interval, _create_job_member("StatusUpdateInterval"),
                       "status update interval")


def validate_acceleration_mode(mode: str) -> str:
    """Check an AccelerationSettings.Mode against the enum of botocore's model."""
    acceleration = _create_job_member("AccelerationSettings")
    mode_shape = acceleration.members["Mode"]  # type: ignore[attr-defined]
    return _check_enum(mode, mode_shape, "acceleration mode")


def validate_create_job_request(params: Mapping[str, Any]) -> None:
    """Check a whole CreateJob request against botocore's input shape.

    botocore's validator reports unknown fields, missing required fields, wrong
    types and values under a minimum. It does not check enum values or
    maximums, which MediaConvert itself rejects with a BadRequest.
    """
    report = _VALIDATOR.validate(dict(params), _create_job_input())
    if report.has_errors():
        raise InvalidJobError(
            "The CreateJob request does not match the MediaConvert API. Fix these fields:\n"
            f"{report.generate_report()}"
        )


def create_job_request_valid(params: Mapping[str, Any]) -> bool:
    """Return True when :func:`validate_create_job_request` would accept ``params``."""
    return not _VALIDATOR.validate(dict(params), _create_job_input()).has_errors()


@functools.lru_cache(maxsize=1)
def create_job_operation() -> OperationModel:
    """Return botocore's operation model of MediaConvert CreateJob."""
    service = botocore.session.get_session().get_service_model("mediaconvert")
    return service.operation_model("CreateJob")


def _create_job_input() -> StructureShape:
    shape = create_job_operation().input_shape
    assert shape is not None, "botocore's CreateJob operation has an input shape"
    return shape


def _create_job_member(name: str) -> Shape:
    return _create_job_input().members[name]


def _check_enum(value: str, shape: Shape, what: str) -> str:
    allowed: list[str] = list(getattr(shape, "enum", []))
    if value not in allowed:
        raise InvalidJobError(f"Invalid {what} {value!r}: use one of {', '.join(allowed)}.")
    return value


__all__ = [
    "S3Location",
    "create_job_operation",
    "create_job_request_valid",
    "normalize_destination",
    "parse_s3_uri",
    "queue_name",
    "validate_acceleration_mode",
    "validate_bucket_name",
    "validate_create_job_request",
    "validate_input_uri",
    "validate_priority",
    "validate_role_arn",
    "validate_status_update_interval",
    "validate_tags",
    "validate_user_metadata",
]
