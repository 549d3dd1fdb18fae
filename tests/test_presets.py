"""Output group presets: shapes checked against botocore's model, no network."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mc_tasks.errors import InvalidJobError
from mc_tasks.presets import (
    DEFAULT_HLS_RENDITIONS,
    HLS_360P_MAX_BITRATE_BPS,
    HLS_540P_MAX_BITRATE_BPS,
    HLS_720P_MAX_BITRATE_BPS,
    HlsPreset,
    Mp4Preset,
    Rendition,
    ThumbnailPreset,
    hls_output_group,
    input_settings,
    is_plain_builtin_preset,
    mp4_output_group,
    preset_output_groups,
    resolve_presets,
    thumbnail_output_group,
)
from mc_tasks.validation import create_job_request_valid, validate_create_job_request

ROLE_ARN = "arn:aws:iam::123456789012:role/MediaConvertRole"
INPUT_URI = "s3://media-in/uploads/clip.mp4"
PREFIX = "s3://media-out/videos/sub-1/"


def full_job_request() -> dict[str, Any]:
    return {
        "Role": ROLE_ARN,
        "Queue": "Default",
        "UserMetadata": {"mc_tasks_reference": "video:1"},
        "ClientRequestToken": "sub-1",
        "Priority": 0,
        "StatusUpdateInterval": "SECONDS_10",
        "AccelerationSettings": {"Mode": "PREFERRED"},
        "Tags": {"team": "video"},
        "Settings": {
            "Inputs": [input_settings(INPUT_URI)],
            "OutputGroups": preset_output_groups(["mp4", "hls", "thumbnails"], PREFIX),
        },
    }


def h264(output: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = output["VideoDescription"]["CodecSettings"]["H264Settings"]
    return settings


def test_full_preset_job_matches_botocore_model() -> None:
    validate_create_job_request(full_job_request())


def test_misspelled_output_field_fails_validation() -> None:
    request = full_job_request()
    output = request["Settings"]["OutputGroups"][0]["Outputs"][0]
    output["NameModifer"] = output.pop("NameModifier")

    with pytest.raises(InvalidJobError) as caught:
        validate_create_job_request(request)

    assert "NameModifer" in str(caught.value)
    assert "Settings.OutputGroups[0].Outputs[0]" in str(caught.value)


def test_wrong_type_fails_validation() -> None:
    request = full_job_request()
    h264(request["Settings"]["OutputGroups"][0]["Outputs"][0])["MaxBitrate"] = "5000000"

    with pytest.raises(InvalidJobError) as caught:
        validate_create_job_request(request)

    assert "MaxBitrate" in str(caught.value)


def test_missing_role_fails_validation() -> None:
    request = full_job_request()
    del request["Role"]

    with pytest.raises(InvalidJobError) as caught:
        validate_create_job_request(request)

    assert "Role" in str(caught.value)


def test_presets_fit_local_mediaconvert_subset() -> None:
    plan_module = pytest.importorskip("mc_tasks.local.mediaconvert.plan")

    plan = plan_module.plan_job(full_job_request()["Settings"])

    assert len(plan.groups) == 3


def test_default_hls_ladder_has_three_renditions() -> None:
    sizes = [(rendition.width, rendition.height) for rendition in DEFAULT_HLS_RENDITIONS]

    assert sizes == [(1280, 720), (960, 540), (640, 360)]


def test_default_hls_ladder_uses_named_bitrates() -> None:
    bitrates = [rendition.max_bitrate_bps for rendition in DEFAULT_HLS_RENDITIONS]

    assert bitrates == [HLS_720P_MAX_BITRATE_BPS, HLS_540P_MAX_BITRATE_BPS,
                        HLS_360P_MAX_BITRATE_BPS]
    assert bitrates == sorted(bitrates, reverse=True)


def test_hls_group_has_one_output_per_rendition() -> None:
    group = hls_output_group(PREFIX)
    outputs = group["Outputs"]

    assert group["OutputGroupSettings"]["Type"] == "HLS_GROUP_SETTINGS"
    assert group["OutputGroupSettings"]["HlsGroupSettings"]["Destination"] == PREFIX
    assert [output["NameModifier"] for output in outputs] == ["_720p", "_540p", "_360p"]
    assert {output["ContainerSettings"]["Container"] for output in outputs} == {"M3U8"}
    assert [h264(output)["MaxBitrate"] for output in outputs] == [
        HLS_720P_MAX_BITRATE_BPS, HLS_540P_MAX_BITRATE_BPS, HLS_360P_MAX_BITRATE_BPS]
    assert all(output["AudioDescriptions"] for output in outputs)


def test_custom_ladder_builds_given_renditions() -> None:
    ladder = (Rendition(1920, 1080, 8_500_000, 8), Rendition(480, 270, 400_000))

    group = HlsPreset(renditions=ladder).output_group(PREFIX)

    sizes = [(o["VideoDescription"]["Width"], o["VideoDescription"]["Height"])
             for o in group["Outputs"]]
    assert sizes == [(1920, 1080), (480, 270)]
    assert [o["NameModifier"] for o in group["Outputs"]] == ["_1080p", "_270p"]
    assert h264(group["Outputs"][0])["QvbrSettings"]["QvbrQualityLevel"] == 8


def test_ladder_with_repeated_modifier_is_rejected() -> None:
    ladder = [Rendition(1280, 720, 5_000_000), Rendition(960, 720, 3_000_000)]

    with pytest.raises(InvalidJobError, match="_720p"):
        hls_output_group(PREFIX, renditions=ladder)


def test_empty_ladder_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="empty"):
        hls_output_group(PREFIX, renditions=[])


@pytest.mark.parametrize(("width", "height"), [(1281, 720), (16, 720), (1280, 9000)])
def test_rendition_with_invalid_size_is_rejected(width: int, height: int) -> None:
    with pytest.raises(InvalidJobError, match="even number of pixels"):
        Rendition(width, height, 1_000_000)


def test_rendition_with_invalid_qvbr_level_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="qvbr_level 11"):
        Rendition(1280, 720, 1_000_000, qvbr_level=11)


def test_mp4_group_is_h264_qvbr_with_aac() -> None:
    group = mp4_output_group(PREFIX)
    output = group["Outputs"][0]
    audio = output["AudioDescriptions"][0]["CodecSettings"]

    assert group["OutputGroupSettings"]["FileGroupSettings"]["Destination"] == PREFIX
    assert output["ContainerSettings"]["Container"] == "MP4"
    assert output["VideoDescription"]["Width"] == 1280
    assert output["VideoDescription"]["Height"] == 720
    assert h264(output)["RateControlMode"] == "QVBR"
    assert audio["Codec"] == "AAC"
    assert audio["AacSettings"]["CodingMode"] == "CODING_MODE_2_0"


def test_thumbnail_group_captures_one_frame_per_interval() -> None:
    group = thumbnail_output_group(PREFIX, interval_s=5, max_captures=3)
    output = group["Outputs"][0]
    capture = output["VideoDescription"]["CodecSettings"]["FrameCaptureSettings"]

    assert output["ContainerSettings"]["Container"] == "RAW"
    assert output["VideoDescription"]["CodecSettings"]["Codec"] == "FRAME_CAPTURE"
    assert capture["FramerateNumerator"] == 1
    assert capture["FramerateDenominator"] == 5
    assert capture["MaxCaptures"] == 3
    assert "AudioDescriptions" not in output


def test_thumbnail_group_rejects_zero_interval() -> None:
    with pytest.raises(InvalidJobError, match="interval 0"):
        thumbnail_output_group(PREFIX, interval_s=0)


def test_each_preset_writes_to_its_own_folder() -> None:
    groups = preset_output_groups(["mp4", "hls", "thumbnails"], PREFIX)

    destinations = [
        next(value["Destination"] for key, value in group["OutputGroupSettings"].items()
             if key.endswith("GroupSettings"))
        for group in groups
    ]
    assert destinations == [f"{PREFIX}mp4/", f"{PREFIX}hls/", f"{PREFIX}thumbnails/"]


def test_preset_objects_mix_with_names() -> None:
    presets = resolve_presets(["mp4", HlsPreset(name="ladder"), ThumbnailPreset(interval_s=2)])

    assert [preset.name for preset in presets] == ["mp4", "ladder", "thumbnails"]


def test_unknown_preset_name_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="Unknown preset 'dash'"):
        resolve_presets(["mp4", "dash"])


def test_preset_string_instead_of_list_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="is a string"):
        resolve_presets("mp4")


def test_repeated_preset_name_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="more than once"):
        resolve_presets(["mp4", Mp4Preset(width=640, height=360)])


def test_preset_name_with_slash_is_rejected() -> None:
    with pytest.raises(InvalidJobError, match="subfolder"):
        resolve_presets([Mp4Preset(name="a/b")])


def test_builders_return_independent_dicts() -> None:
    first = preset_output_groups(["hls"], PREFIX)
    snapshot = copy.deepcopy(first)
    first[0]["Outputs"][0]["NameModifier"] = "_changed"

    second = preset_output_groups(["hls"], PREFIX)

    assert second == snapshot


@pytest.mark.parametrize("preset", [Mp4Preset(), HlsPreset(), ThumbnailPreset(),
                                    Mp4Preset(name="small", width=640, height=360)])
def test_int_field_presets_are_plain(preset: object) -> None:
    assert is_plain_builtin_preset(preset) is True


class WiderMp4Preset(Mp4Preset):
    def output_group(self, destination: str) -> dict[str, Any]:
        return mp4_output_group(destination, width=1920, height=1080)


@pytest.mark.parametrize("preset", [
    Mp4Preset(width=1280.0),  # type: ignore[arg-type]
    HlsPreset(renditions=list(DEFAULT_HLS_RENDITIONS)),  # type: ignore[arg-type]
    HlsPreset(renditions=(Rendition(640, 360, 1_000_000, qvbr_level=7.0),)),  # type: ignore[arg-type]
    WiderMp4Preset(),
    "mp4",
])
def test_other_presets_are_not_plain(preset: object) -> None:
    assert is_plain_builtin_preset(preset) is False


def test_request_valid_agrees_with_validation() -> None:
    request = full_job_request()
    assert create_job_request_valid(request) is True

    h264(request["Settings"]["OutputGroups"][0]["Outputs"][0])["MaxBitrate"] = "5000000"

    assert create_job_request_valid(request) is False
    with pytest.raises(InvalidJobError, match="MaxBitrate"):
        validate_create_job_request(request)
