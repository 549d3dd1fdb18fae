"""Input checks run before any AWS call; pure unit tests, no network."""

from __future__ import annotations

import botocore.session
import pytest

from mc_tasks.errors import InvalidJobError
from mc_tasks.metadata import APPLICATION_KEY, REFERENCE_KEY, SUBMISSION_KEY
from mc_tasks.settings import Settings
from mc_tasks.submit import build_user_metadata, client_request_token
from mc_tasks.validation import (
    normalize_destination,
    parse_s3_uri,
    queue_name,
    validate_acceleration_mode,
    validate_input_uri,
    validate_priority,
    validate_role_arn,
    validate_status_update_interval,
    validate_tags,
    validate_user_metadata,
)

SETTINGS = Settings(region="us-east-1",
                    mediaconvert_role_arn="arn:aws:iam::123456789012:role/MediaConvertRole")


def create_job_enum(member: str) -> list[str]:
    model = botocore.session.get_session().get_service_model("mediaconvert")
    shape = model.operation_model("CreateJob").input_shape
    assert shape is not None
    return list(shape.members[member].enum)  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", [
    "uploads/my video.mp4",
    "uploads/a+b.mp4",
    "uploads/vidéo été 日本.mov",
    "uploads/100%25 done?.mp4",
])
def test_input_key_passes_through_unchanged(key: str) -> None:
    location = validate_input_uri(f"s3://media-in/{key}")

    assert location.bucket == "media-in"
    assert location.key == key


@pytest.mark.parametrize("uri", [
    "https://media-in.s3.amazonaws.com/clip.mp4",
    "S3://media-in/clip.mp4",
    "media-in/clip.mp4",
    "s3:/media-in/clip.mp4",
])
def test_uri_without_s3_scheme_is_rejected(uri: str) -> None:
    with pytest.raises(InvalidJobError, match="scheme s3://"):
        parse_s3_uri(uri)


@pytest.mark.parametrize(("bucket", "problem"), [
    ("ab", "has 2 characters"),
    ("a" * 64, "has 64 characters"),
    ("Media-In", "lowercase letters"),
    ("media_in", "lowercase letters"),
    ("-media", "start and end"),
    ("media..in", "two adjacent dots"),
    ("192.168.5.4", "IP address"),
])
def test_invalid_bucket_name_is_rejected(bucket: str, problem: str) -> None:
    with pytest.raises(InvalidJobError, match=problem):
        validate_input_uri(f"s3://{bucket}/clip.mp4")


@pytest.mark.parametrize("uri", ["s3://media-in", "s3://media-in/", "s3://media-in/uploads/"])
def test_input_without_file_key_is_rejected(uri: str) -> None:
    with pytest.raises(InvalidJobError, match="names a folder"):
        validate_input_uri(uri)


def test_key_over_limit_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="1024 bytes"):
        validate_input_uri("s3://media-in/" + "é" * 513)


@pytest.mark.parametrize(("destination", "normalized"), [
    ("s3://media-out", "s3://media-out/"),
    ("s3://media-out/", "s3://media-out/"),
    ("s3://media-out/videos", "s3://media-out/videos/"),
    ("s3://media-out/videos/", "s3://media-out/videos/"),
    ("s3://media-out/my videos+1", "s3://media-out/my videos+1/"),
])
def test_destination_is_normalized_with_trailing_slash(destination: str, normalized: str) -> None:
    assert normalize_destination(destination) == normalized


def test_destination_with_bad_bucket_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="Invalid destination"):
        normalize_destination("s3://Media_Out/videos")


def test_valid_role_arn_is_accepted() -> None:
    arn = "arn:aws:iam::123456789012:role/service-role/MediaConvert_Default_Role"

    assert validate_role_arn(arn) == arn


@pytest.mark.parametrize("arn", [
    "MediaConvertRole",
    "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::1234:role/MediaConvertRole",
])
def test_invalid_role_arn_is_rejected(arn: str) -> None:
    with pytest.raises(InvalidJobError, match="IAM role ARN"):
        validate_role_arn(arn)


def test_queue_name_is_returned_as_is() -> None:
    assert queue_name("Default", region="us-east-1") == "Default"


def test_queue_arn_of_same_region_gives_name() -> None:
    arn = "arn:aws:mediaconvert:us-east-1:123456789012:queues/priority-jobs"

    assert queue_name(arn, region="us-east-1") == "priority-jobs"


def test_queue_arn_of_other_region_is_rejected() -> None:
    arn = "arn:aws:mediaconvert:eu-west-1:123456789012:queues/Default"

    with pytest.raises(InvalidJobError, match="region eu-west-1") as caught:
        queue_name(arn, region="us-east-1")

    assert "us-east-1" in str(caught.value)


def test_malformed_queue_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="Invalid MediaConvert queue"):
        queue_name("queues/Default", region="us-east-1")


def test_user_metadata_has_mc_tasks_keys() -> None:
    metadata = build_user_metadata(SETTINGS, "sub-1", "video:42", {"tenant": "acme"})

    assert metadata[REFERENCE_KEY] == "video:42"
    assert metadata[APPLICATION_KEY] == SETTINGS.application
    assert metadata[SUBMISSION_KEY] == "sub-1"
    assert metadata["tenant"] == "acme"


def test_user_metadata_without_reference_omits_key() -> None:
    metadata = build_user_metadata(SETTINGS, "sub-1", None, None)

    assert REFERENCE_KEY not in metadata


@pytest.mark.parametrize("key", [REFERENCE_KEY, APPLICATION_KEY, SUBMISSION_KEY])
def test_caller_cannot_override_mc_tasks_keys(key: str) -> None:
    with pytest.raises(InvalidJobError, match=key):
        build_user_metadata(SETTINGS, "sub-1", "video:42", {key: "other"})


def test_more_than_ten_pairs_is_rejected() -> None:
    caller = {f"key{index}": "value" for index in range(8)}

    with pytest.raises(InvalidJobError, match="11 pairs") as caught:
        build_user_metadata(SETTINGS, "sub-1", "video:42", caller)

    assert "limit of 10" in str(caught.value)


def test_seven_caller_pairs_fit_with_mc_tasks_keys() -> None:
    caller = {f"key{index}": "value" for index in range(7)}

    metadata = build_user_metadata(SETTINGS, "sub-1", "video:42", caller)

    assert len(metadata) == 10


def test_long_metadata_key_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="129 characters") as caught:
        validate_user_metadata({"k" * 129: "value"})

    assert "1 to 128" in str(caught.value)


def test_long_metadata_value_names_key_and_limit() -> None:
    with pytest.raises(InvalidJobError, match="'note' has 257 characters") as caught:
        validate_user_metadata({"note": "v" * 257})

    assert "limit of 256" in str(caught.value)


def test_value_of_256_characters_is_accepted() -> None:
    assert validate_user_metadata({"note": "v" * 256}) == {"note": "v" * 256}


@pytest.mark.parametrize(("key", "value"), [("title", "vidéo"), ("path", "a#b"), ("ta{g}", "x")])
def test_metadata_with_disallowed_characters_is_rejected(key: str, value: str) -> None:
    with pytest.raises(InvalidJobError, match="not allowed") as caught:
        validate_user_metadata({key: value})

    assert repr(key) in str(caught.value)


def test_metadata_with_non_string_value_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="pair of strings"):
        validate_user_metadata({"id": 42})  # type: ignore[dict-item]


@pytest.mark.parametrize("priority", [-50, 0, 50])
def test_priority_in_range_is_accepted(priority: int) -> None:
    assert validate_priority(priority) == priority


@pytest.mark.parametrize("priority", [-51, 51, True, "1"])
def test_priority_out_of_range_is_rejected(priority: object) -> None:
    with pytest.raises(InvalidJobError, match="from -50 to 50"):
        validate_priority(priority)  # type: ignore[arg-type]


def test_every_model_status_interval_is_accepted() -> None:
    intervals = create_job_enum("StatusUpdateInterval")

    assert "SECONDS_10" in intervals
    for interval in intervals:
        assert validate_status_update_interval(interval) == interval


def test_unknown_status_interval_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="SECONDS_10, SECONDS_12"):
        validate_status_update_interval("SECONDS_5")


@pytest.mark.parametrize("mode", ["DISABLED", "ENABLED", "PREFERRED"])
def test_model_acceleration_modes_are_accepted(mode: str) -> None:
    assert validate_acceleration_mode(mode) == mode


def test_unknown_acceleration_mode_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="acceleration mode 'FAST'"):
        validate_acceleration_mode("FAST")


def test_reserved_tag_prefix_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="aws:"):
        validate_tags({"aws:createdBy": "me"})


def test_long_tag_value_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="257 characters"):
        validate_tags({"team": "x" * 257})


def test_short_submission_id_is_its_own_token() -> None:
    assert client_request_token("d3b07384-d9a0-4c9b-8a3e-1f2e3d4c5b6a") == (
        "d3b07384-d9a0-4c9b-8a3e-1f2e3d4c5b6a")


def test_long_submission_id_token_fits_64_characters() -> None:
    token = client_request_token("x" * 100)

    assert len(token) == 64
    assert token == client_request_token("x" * 100)
    assert token != client_request_token("x" * 99 + "y")
