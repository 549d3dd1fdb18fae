"""Parsing of MediaConvert job state change events from SQS message bodies."""

from __future__ import annotations

import json

import pytest

from mc_tasks.errors import EventParseError, McTasksError
from mc_tasks.events import JobOutputs, discard_reason, parse_message
from mc_tasks.settings import Settings
from tests import event_samples as samples

JOB = "1671476818694-phptj0"


def body(event: dict[str, object]) -> str:
    return json.dumps(event)


def test_progressing_event_parsed() -> None:
    event = parse_message(body(samples.progressing(JOB, event_id="evt-1", reference="ref-7")))

    assert event.event_id == "evt-1"
    assert event.job_id == JOB
    assert event.status == "PROGRESSING"
    assert event.timestamp_ms == samples.BASE_TIMESTAMP_MS
    assert event.reference == "ref-7"
    assert event.account_id == samples.ACCOUNT_ID
    assert event.region == samples.REGION
    assert event.queue == samples.QUEUE_ARN
    assert event.application == "mc_tasks"
    assert event.submission_id == f"submission-{JOB}"
    assert not event.is_final


def test_status_update_has_percent_and_phase() -> None:
    event = parse_message(body(samples.status_update(JOB, 42, "UPLOADING")))

    assert event.status == "STATUS_UPDATE"
    assert event.percent == 42
    assert event.phase == "UPLOADING"


def test_complete_hls_outputs() -> None:
    event = parse_message(body(samples.complete_hls(JOB)))
    outputs = event.outputs

    assert event.is_final
    assert outputs.hls_master_playlist == "s3://media-bucket/hls/main.m3u8"
    assert [group.type for group in outputs.groups] == ["HLS_GROUP"]
    assert [output.width for output in outputs.groups[0].outputs] == [426, 1280]
    assert outputs.groups[0].outputs[1].height == 720
    assert outputs.groups[0].outputs[0].duration_ms == 180041
    assert outputs.file_outputs == []
    assert event.warnings == ({"code": 230001, "count": 1},)


def test_complete_file_group_with_frame_capture() -> None:
    outputs = parse_message(body(samples.complete_file_with_frames(JOB))).outputs

    assert outputs.hls_master_playlist is None
    assert outputs.thumbnails == ["s3://media-bucket/frames/file.0000036.jpg"]
    assert outputs.last_thumbnail == "s3://media-bucket/frames/file.0000036.jpg"
    assert [o.output_file_paths for o in outputs.file_outputs] == [
        ("s3://media-bucket/file/file.mp4",)]


def test_outputs_round_trip_through_dict() -> None:
    outputs = parse_message(body(samples.complete_hls(JOB))).outputs

    restored = JobOutputs.from_dict(json.loads(json.dumps(outputs.to_dict())))

    assert restored == outputs


def test_error_event_has_code_and_message() -> None:
    event = parse_message(body(samples.error(JOB, code=1040, message="Bad input")))

    assert event.status == "ERROR"
    assert event.error_code == 1040
    assert event.error_message == "Bad input"
    assert event.permanent is True


def test_unknown_error_code_is_transient() -> None:
    event = parse_message(body(samples.error(JOB, code=1999)))

    assert event.permanent is False


def test_canceled_event_is_final() -> None:
    event = parse_message(body(samples.canceled(JOB)))

    assert event.status == "CANCELED"
    assert event.is_final


def test_input_information_has_input_details() -> None:
    event = parse_message(body(samples.input_information(JOB)))

    assert event.status == "INPUT_INFORMATION"
    assert event.input_details is not None
    assert event.input_details[0]["video"][0]["width"] == 1920


def test_new_warning_has_code_and_message() -> None:
    event = parse_message(body(samples.new_warning(JOB, code="230005", message="Late")))

    assert event.warnings == ({"code": "230005", "message": "Late"},)


def test_queue_hop_parsed() -> None:
    event = parse_message(body(samples.queue_hop(JOB)))

    assert event.status == "QUEUE_HOP"
    assert event.queue == samples.QUEUE_ARN


def test_sns_envelope_unwrapped() -> None:
    inner = samples.complete_hls(JOB, event_id="evt-sns")

    event = parse_message(body(samples.sns_wrapped(inner)))

    assert event.event_id == "evt-sns"
    assert event.status == "COMPLETE"


def test_missing_account_falls_back_to_detail() -> None:
    event = parse_message(body(samples.progressing(JOB, account=None)))

    assert event.account_id == samples.ACCOUNT_ID


def test_to_dict_is_json_serialisable() -> None:
    event = parse_message(body(samples.complete_hls(JOB)))

    data = json.loads(json.dumps(event.to_dict()))

    assert data["outputs"]["groups"][0]["playlist_file_paths"] == [
        "s3://media-bucket/hls/main.m3u8"]


@pytest.mark.parametrize(("text", "reason"), [
    ("not json at all", "not_json"),
    ("[1, 2, 3]", "wrong_shape"),
    ('{"hello": "world"}', "wrong_shape"),
    (json.dumps({"Type": "Notification", "Message": "{broken"}), "not_json"),
])
def test_unusable_body_rejected(text: str, reason: str) -> None:
    with pytest.raises(EventParseError) as caught:
        parse_message(text)

    assert caught.value.reason == reason
    assert caught.value.discardable is False
    assert isinstance(caught.value, McTasksError)


@pytest.mark.parametrize("field", ["jobId", "status", "timestamp"])
def test_detail_without_required_field_rejected(field: str) -> None:
    event = samples.progressing(JOB)
    del event["detail"][field]

    with pytest.raises(EventParseError) as caught:
        parse_message(body(event))

    assert caught.value.reason == "wrong_shape"
    assert field in str(caught.value)


def test_malformed_output_details_rejected() -> None:
    event = samples.complete_hls(JOB)
    event["detail"]["outputGroupDetails"] = [{"outputDetails": "oops"}]

    with pytest.raises(EventParseError) as caught:
        parse_message(body(event))

    assert caught.value.reason == "wrong_shape"


def test_other_detail_type_is_discardable() -> None:
    event = samples.envelope("PROGRESSING", JOB, detail_type="MediaConvert Queue Change")

    with pytest.raises(EventParseError) as caught:
        parse_message(body(event))

    assert caught.value.reason == "other_detail_type"
    assert caught.value.discardable is True


def test_other_source_is_discardable() -> None:
    event = samples.envelope("PROGRESSING", JOB, source="aws.s3")

    with pytest.raises(EventParseError) as caught:
        parse_message(body(event))

    assert caught.value.reason == "other_source"
    assert caught.value.discardable is True


def test_own_event_not_discarded(settings: Settings) -> None:
    event = parse_message(body(samples.progressing(JOB)))

    assert discard_reason(event, settings, expected_account_id=samples.ACCOUNT_ID) is None


def test_foreign_job_discarded(settings: Settings) -> None:
    event = parse_message(body(samples.progressing(JOB, application=None)))

    assert discard_reason(event, settings) == "foreign_job"


def test_other_application_discarded(settings: Settings) -> None:
    event = parse_message(body(samples.progressing(JOB, application="other-app")))

    assert discard_reason(event, settings) == "foreign_job"


def test_other_account_discarded_when_expected_known(settings: Settings) -> None:
    event = parse_message(body(samples.progressing(JOB)))

    assert discard_reason(event, settings, expected_account_id="999999999999") == "other_account"
    assert discard_reason(event, settings) is None


def test_other_region_discarded(settings: Settings) -> None:
    event = parse_message(body(samples.progressing(JOB, region="eu-west-1")))

    assert discard_reason(event, settings) == "other_region"


def test_unknown_status_discarded(settings: Settings) -> None:
    event = parse_message(body(samples.envelope("PAUSED_FOREVER", JOB)))

    assert discard_reason(event, settings) == "unknown_status"


@pytest.mark.parametrize("detail_change", [
    {"timestamp": float("inf")},
    {"jobProgress": {"jobPercentComplete": 1e999, "currentPhase": "TRANSCODING"}},
    {"errorCode": float("-inf")},
])
def test_overflowing_number_is_wrong_shape(detail_change: dict[str, object]) -> None:
    envelope = samples.status_update("job-1", percent=10)
    envelope["detail"].update(detail_change)
    if "errorCode" in detail_change:
        envelope["detail"]["status"] = "ERROR"

    with pytest.raises(EventParseError) as caught:
        parse_message(json.dumps(envelope))

    assert caught.value.reason == "wrong_shape"
    assert not caught.value.discardable


def test_deeply_nested_body_is_not_json() -> None:
    body = "[" * 100_000 + "]" * 100_000

    with pytest.raises(EventParseError) as caught:
        parse_message(body)

    assert caught.value.reason == "not_json"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\udc80 then \\ud83d"])
def test_unpaired_surrogate_is_not_json(escape: str) -> None:
    body = json.dumps(samples.error(samples.job_id(), message="placeholder"))

    with pytest.raises(EventParseError) as caught:
        parse_message(body.replace("placeholder", escape))

    assert caught.value.reason == "not_json"
    assert "surrogate" in str(caught.value)


def test_escaped_surrogate_pair_parses() -> None:
    body = json.dumps(samples.error(samples.job_id(), message="clip \N{FILM FRAMES} failed"))

    event = parse_message(body)

    assert "\\ud83c\\udf9e" in body
    assert event.error_message == "clip \N{FILM FRAMES} failed"
