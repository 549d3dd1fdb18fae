"""Identifiers, ARNs and output object names as MediaConvert forms them.

Output names follow MediaConvert's rules: a file output is
``<destination prefix><base name><NameModifier>.<extension>``, where the base
name is the input file name without its extension unless the destination ends
in a name of its own (no trailing ``/``), which then replaces it.
"""

from __future__ import annotations

import random
import re
import string
import time
from dataclasses import dataclass
from pathlib import PurePosixPath

from mc_tasks.local.mediaconvert.api_errors import BadRequest

_JOB_ID_SUFFIX_LENGTH = 6
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_QUEUE_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:mediaconvert:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"queues/(?P<name>[A-Za-z0-9_-]{1,128})$"
)
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.*)$")
#: Characters the local server accepts in a NameModifier; MediaConvert's
#: format identifiers such as ``$dt$`` are not implemented.
_NAME_MODIFIER = re.compile(r"^[A-Za-z0-9_.+=@-]*$")


def new_job_id() -> str:
    """Return a job id shaped like MediaConvert's: epoch milliseconds, a dash, six letters."""
    alphabet = string.ascii_lowercase + string.digits
    suffix = "".join(random.choices(alphabet, k=_JOB_ID_SUFFIX_LENGTH))  # noqa: S311 - not a secret
    return f"{int(time.time() * 1000)}-{suffix}"


def job_arn(region: str, account_id: str, job_id: str) -> str:
    return f"arn:aws:mediaconvert:{region}:{account_id}:jobs/{job_id}"


def queue_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:mediaconvert:{region}:{account_id}:queues/{name}"


def queue_name_from(name_or_arn: str) -> str:
    """Return the queue name from a queue name or a queue ARN."""
    found = _QUEUE_ARN.match(name_or_arn)
    return found.group("name") if found else name_or_arn


def check_role_arn(role: str) -> None:
    """Raise BadRequest unless ``role`` looks like an IAM role ARN."""
    if not _ROLE_ARN.match(role):
        raise BadRequest(
            f"Role={role!r} is not a valid IAM role ARN: expected "
            "arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME."
        )


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str, path: str) -> S3Uri:
    """Split an ``s3://bucket/key`` URI; ``path`` names the setting in the error."""
    found = _S3_URI.match(uri)
    if not found:
        raise BadRequest(f"{path}={uri} is not supported by the local MediaConvert: "
                         "expected an s3://BUCKET/KEY URI.")
    return S3Uri(found.group("bucket"), found.group("key"))


def input_base_name(input_uri: str) -> str:
    """Return the input file name without its extension, as MediaConvert names outputs."""
    return PurePosixPath(input_uri.rsplit("/", 1)[-1]).stem


def destination_prefix_and_base(destination: S3Uri, input_base: str) -> tuple[S3Uri, str]:
    """Return the key prefix outputs go under and the base name of their files.

    A destination ending in ``/`` keeps the input base name; otherwise its last
    path segment is the base name.
    """
    if destination.key == "" or destination.key.endswith("/"):
        return destination, input_base
    prefix, _, base = destination.key.rpartition("/")
    return S3Uri(destination.bucket, f"{prefix}/" if prefix else ""), base


def check_name_modifier(modifier: str, path: str) -> None:
    """Raise BadRequest for a NameModifier the local server cannot use in a file name."""
    if not _NAME_MODIFIER.match(modifier):
        raise BadRequest(
            f"{path}={modifier} is not supported by the local MediaConvert: use only "
            "letters, digits and _ . + = @ - (format identifiers such as $dt$ are not "
            "implemented)."
        )
