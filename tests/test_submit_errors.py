"""submit_transcode without a MediaConvert server: error mapping, replays, early rejection.

botocore's Stubber injects the MediaConvert error responses; Redis is real.
The client's endpoint points at a closed loopback port, so a call that the
Stubber does not handle cannot leave the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.stub import Stubber

from mc_tasks.clients import clear_clients, get_client
from mc_tasks.errors import (
    InvalidJobError,
    MediaConvertBadRequest,
    MediaConvertConflict,
    MediaConvertError,
    MediaConvertForbidden,
    MediaConvertNotFound,
    MediaConvertQuotaExceeded,
    MediaConvertServiceError,
    MediaConvertThrottled,
    RedisUnavailableError,
)
from mc_tasks.local.stack import free_port
from mc_tasks.settings import Settings
from mc_tasks.submissions import SubmissionStore
from mc_tasks.submit import submit_transcode
from tests.conftest import TEST_REDIS_URL

INPUT_URI = "s3://media-in/uploads/clip.mp4"
DESTINATION = "s3://media-out/videos"


@pytest.fixture
def closed_endpoint(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the MediaConvert client at a loopback port where nothing listens."""
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_MEDIACONVERT", url)
    clear_clients()
    return url


@pytest.fixture
def stubber(settings: Settings, closed_endpoint: str) -> Iterator[Stubber]:
    with Stubber(get_client("mediaconvert", settings)) as stub:
        yield stub


ERROR_CASES = [
    ("BadRequestException", 400, MediaConvertBadRequest, False),
    ("ForbiddenException", 403, MediaConvertForbidden, False),
    ("NotFoundException", 404, MediaConvertNotFound, False),
    ("ConflictException", 409, MediaConvertConflict, False),
    ("TooManyRequestsException", 429, MediaConvertThrottled, True),
    ("InternalServerErrorException", 500, MediaConvertServiceError, True),
    ("ServiceQuotaExceededException", 402, MediaConvertQuotaExceeded, False),
]


@pytest.mark.parametrize(("code", "status", "error_class", "retryable"), ERROR_CASES,
                         ids=[case[0] for case in ERROR_CASES])
def test_create_job_error_is_mapped(settings: Settings, stubber: Stubber, code: str, status: int,
                                    error_class: type[MediaConvertError], retryable: bool,
                                    submitted: list[dict[str, Any]]) -> None:
    stubber.add_client_error("create_job", service_error_code=code,
                             service_message=f"{code} from the test", http_status_code=status)

    with pytest.raises(error_class) as caught:
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=settings)

    assert caught.value.retryable is retryable
    assert caught.value.code == code
    assert caught.value.http_status == status
    assert f"{code} from the test" in str(caught.value)
    assert isinstance(caught.value.__cause__, ClientError)
    assert submitted == []


def test_pass_role_denial_shows_policy_statement(settings: Settings, stubber: Stubber) -> None:
    role_arn = settings.require_role_arn()
    stubber.add_client_error(
        "create_job", service_error_code="ForbiddenException", http_status_code=403,
        service_message=(f"User: arn:aws:iam::123456789012:user/app is not authorized to "
                         f"perform: iam:PassRole on resource: {role_arn}"),
    )

    with pytest.raises(MediaConvertForbidden) as caught:
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=settings)

    message = str(caught.value)
    statement = json.loads(message[message.index('{"Effect"'):])
    assert statement["Action"] == "iam:PassRole"
    assert statement["Resource"] == role_arn
    assert statement["Condition"] == {
        "StringEquals": {"iam:PassedToService": "mediaconvert.amazonaws.com"}}


def test_other_denial_has_no_pass_role_statement(settings: Settings, stubber: Stubber) -> None:
    stubber.add_client_error(
        "create_job", service_error_code="AccessDeniedException", http_status_code=403,
        service_message="not authorized to perform: mediaconvert:CreateJob")

    with pytest.raises(MediaConvertForbidden) as caught:
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], settings=settings)

    assert "iam:PassedToService" not in str(caught.value)


def test_recorded_submission_returns_job_without_aws_call(
        settings: Settings, stubber: Stubber, submitted: list[dict[str, Any]]) -> None:
    SubmissionStore(settings).mark_created(
        "sub-recorded", "1700000000000-abcdef", queue="Default",
        destination=f"{DESTINATION}/sub-recorded/")

    result = submit_transcode(INPUT_URI, DESTINATION, submission_id="sub-recorded",
                              settings=settings)

    assert result.job_id == "1700000000000-abcdef"
    assert result.created is False
    assert result.destination == f"{DESTINATION}/sub-recorded/"
    assert submitted == []
    stubber.assert_no_pending_responses()


def test_invalid_request_writes_nothing(settings: Settings, stubber: Stubber) -> None:
    with pytest.raises(InvalidJobError, match="names a folder"):
        submit_transcode("s3://media-in/uploads/", DESTINATION, submission_id="sub-invalid",
                         settings=settings)

    connection = redis.Redis.from_url(TEST_REDIS_URL)
    assert connection.exists(SubmissionStore(settings).key("sub-invalid")) == 0
    connection.close()


def test_invalid_submission_id_is_rejected(settings: Settings) -> None:
    with pytest.raises(InvalidJobError, match="submission id"):
        submit_transcode(INPUT_URI, DESTINATION, submission_id="a/b", settings=settings)


def test_queue_arn_of_other_region_is_rejected(settings: Settings) -> None:
    other = settings.replace(
        mediaconvert_queue="arn:aws:mediaconvert:eu-west-1:123456789012:queues/Default")

    with pytest.raises(InvalidJobError, match="region eu-west-1"):
        submit_transcode(INPUT_URI, DESTINATION, settings=other)


def test_missing_role_is_a_configuration_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="MC_TASKS_MEDIACONVERT_ROLE_ARN"):
        submit_transcode(INPUT_URI, DESTINATION,
                         settings=settings.replace(mediaconvert_role_arn=None))


def test_connection_error_propagates_unchanged(settings: Settings, closed_endpoint: str) -> None:
    single_attempt = settings.replace(aws_max_attempts=1)

    with pytest.raises(EndpointConnectionError):
        submit_transcode(INPUT_URI, DESTINATION, presets=["mp4"], submission_id="sub-offline",
                         settings=single_attempt)

    record = SubmissionStore(settings).get("sub-offline")
    assert record is not None
    assert record.state == "pending"


def test_unreachable_redis_names_setting(settings: Settings) -> None:
    unreachable = settings.replace(redis_url="redis://user:s3cret@127.0.0.1:1/0")

    with pytest.raises(RedisUnavailableError) as caught:
        submit_transcode("s3://media-in/clip.mp4", "s3://media-out/", presets=["mp4"],
                         settings=unreachable)

    assert "MC_TASKS_REDIS_URL" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert isinstance(caught.value, redis.exceptions.ConnectionError)
