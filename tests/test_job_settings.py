"""Caller-given job settings: console export shapes, input and destinations; no network."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mc_tasks.errors import InvalidJobError
from mc_tasks.job_settings import load_job_settings, rebase_destinations, set_input
from mc_tasks.submit import build_job_settings
from mc_tasks.validation import validate_create_job_request

INPUT_URI = "s3://media-in/uploads/new clip+1.mov"
PREFIX = "s3://media-out/videos/sub-1/"

SETTINGS: dict[str, Any] = {
    "Inputs": [{
        "FileInput": "s3://console-bucket/source/original.mp4",
        "AudioSelectors": {"Audio Selector 1": {"DefaultSelection": "DEFAULT"}},
        "VideoSelector": {},
        "TimecodeSource": "ZEROBASED",
    }],
    "OutputGroups": [
        {
            "Name": "File Group",
            "OutputGroupSettings": {
                "Type": "FILE_GROUP_SETTINGS",
                "FileGroupSettings": {"Destination": "s3://console-bucket/out/mp4/"},
            },
            "Outputs": [{
                "NameModifier": "_web",
                "ContainerSettings": {"Container": "MP4"},
                "VideoDescription": {"CodecSettings": {"Codec": "H_264", "H264Settings": {
                    "RateControlMode": "QVBR", "MaxBitrate": 3_000_000}}},
            }],
        },
        {
            "Name": "Apple HLS",
            "OutputGroupSettings": {
                "Type": "HLS_GROUP_SETTINGS",
                "HlsGroupSettings": {"Destination": "s3://console-bucket/out/stream",
                                     "SegmentLength": 6, "MinSegmentLength": 0},
            },
            "Outputs": [{
                "NameModifier": "_360p",
                "ContainerSettings": {"Container": "M3U8"},
                "VideoDescription": {"Width": 640, "Height": 360, "CodecSettings": {
                    "Codec": "H_264", "H264Settings": {"RateControlMode": "QVBR",
                                                       "MaxBitrate": 1_200_000}}},
            }],
        },
    ],
}

#: A job as the console's "Export JSON" writes it, with read-only fields.
EXPORTED_JOB: dict[str, Any] = {
    "Arn": "arn:aws:mediaconvert:us-east-1:123456789012:jobs/1700000000000-abcdef",
    "Id": "1700000000000-abcdef",
    "CreatedAt": "2024-01-01T00:00:00Z",
    "Status": "COMPLETE",
    "Timing": {"SubmitTime": "2024-01-01T00:00:00Z"},
    "Role": "arn:aws:iam::123456789012:role/Old",
    "Queue": "arn:aws:mediaconvert:us-east-1:123456789012:queues/Default",
    "UserMetadata": {"old": "value"},
    "Settings": SETTINGS,
}


@pytest.mark.parametrize("document", [
    {"Job": EXPORTED_JOB},
    EXPORTED_JOB,
    {"Settings": SETTINGS},
    SETTINGS,
], ids=["get-job", "exported-job", "settings-wrapper", "bare-settings"])
def test_export_shapes_yield_settings(document: dict[str, Any]) -> None:
    assert load_job_settings(document) == SETTINGS


def test_json_string_is_parsed() -> None:
    assert load_job_settings(json.dumps(EXPORTED_JOB)) == SETTINGS


def test_json_file_path_is_read(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(EXPORTED_JOB), encoding="utf-8")

    assert load_job_settings(path) == SETTINGS
    assert load_job_settings(str(path)) == SETTINGS


def test_read_only_fields_are_dropped_with_debug_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="mc_tasks.job_settings"):
        settings = load_job_settings(EXPORTED_JOB)

    assert "Arn" not in settings
    assert "Arn, CreatedAt, Id, Queue, Role, Status, Timing, UserMetadata" in caplog.text


def test_loaded_settings_are_a_copy() -> None:
    settings = load_job_settings(EXPORTED_JOB)
    settings["Inputs"][0]["FileInput"] = "s3://changed/x.mp4"

    assert SETTINGS["Inputs"][0]["FileInput"] == "s3://console-bucket/source/original.mp4"


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidJobError, match="was not found"):
        load_job_settings(tmp_path / "missing.json")


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(InvalidJobError, match="line 1, column 14"):
        load_job_settings('{"Settings": }')


def test_document_without_settings_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="top-level keys: Name, Queue"):
        load_job_settings({"Name": "template", "Queue": "Default"})


def test_input_is_replaced_for_single_input() -> None:
    settings = copy.deepcopy(SETTINGS)

    set_input(settings, INPUT_URI)

    assert settings["Inputs"][0]["FileInput"] == INPUT_URI
    assert settings["Inputs"][0]["TimecodeSource"] == "ZEROBASED"


@pytest.mark.parametrize("count", [0, 2])
def test_job_without_exactly_one_input_is_rejected(count: int) -> None:
    settings = copy.deepcopy(SETTINGS)
    settings["Inputs"] = [copy.deepcopy(SETTINGS["Inputs"][0]) for _ in range(count)]

    with pytest.raises(InvalidJobError, match=f"have {count} inputs"):
        set_input(settings, INPUT_URI)


def test_destinations_move_under_prefix_keeping_keys() -> None:
    settings = copy.deepcopy(SETTINGS)

    rebase_destinations(settings, PREFIX)

    groups = settings["OutputGroups"]
    assert groups[0]["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == (
        f"{PREFIX}out/mp4/")
    assert groups[1]["OutputGroupSettings"]["HlsGroupSettings"]["Destination"] == (
        f"{PREFIX}out/stream")


def test_group_without_destination_writes_to_prefix() -> None:
    settings = copy.deepcopy(SETTINGS)
    del settings["OutputGroups"][0]["OutputGroupSettings"]["FileGroupSettings"]

    rebase_destinations(settings, PREFIX)

    group_settings = settings["OutputGroups"][0]["OutputGroupSettings"]
    assert group_settings["FileGroupSettings"]["Destination"] == PREFIX


def test_settings_without_output_groups_are_rejected() -> None:
    with pytest.raises(InvalidJobError, match="no OutputGroups"):
        rebase_destinations({"Inputs": SETTINGS["Inputs"]}, PREFIX)


def test_unknown_group_type_is_rejected() -> None:
    settings = copy.deepcopy(SETTINGS)
    settings["OutputGroups"][0]["OutputGroupSettings"]["Type"] = "RTMP_GROUP_SETTINGS"

    with pytest.raises(InvalidJobError, match="RTMP_GROUP_SETTINGS"):
        rebase_destinations(settings, PREFIX)


def test_built_export_settings_match_botocore_model() -> None:
    settings = build_job_settings(INPUT_URI, PREFIX, job_settings=EXPORTED_JOB)

    validate_create_job_request({"Role": "arn:aws:iam::123456789012:role/R",
                                 "Settings": settings})
    assert settings["Inputs"][0]["FileInput"] == INPUT_URI


def test_settings_and_presets_together_are_rejected() -> None:
    with pytest.raises(InvalidJobError, match="Both job_settings and presets"):
        build_job_settings(INPUT_URI, PREFIX, job_settings=SETTINGS, presets=["mp4"])


def test_template_and_presets_together_are_rejected() -> None:
    with pytest.raises(InvalidJobError, match="Both job_template"):
        build_job_settings(INPUT_URI, PREFIX, job_template="System-Ott_Hls", presets=["hls"])


def test_template_alone_sets_only_input() -> None:
    settings = build_job_settings(INPUT_URI, PREFIX, job_template="System-Ott_Hls")

    assert settings == {"Inputs": [{"FileInput": INPUT_URI}]}


def test_json_array_string_is_not_an_object() -> None:
    with pytest.raises(InvalidJobError) as caught:
        load_job_settings("[]")

    assert "not found" not in str(caught.value)
    assert "object" in str(caught.value)


def test_empty_preset_list_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="presets is empty"):
        build_job_settings("s3://media-in/clip.mp4", "s3://media-out/job/", presets=[])
