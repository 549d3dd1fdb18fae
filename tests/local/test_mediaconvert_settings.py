"""Settings checks, wire conversion, output naming and the ffmpeg command, without servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mc_tasks.local.mediaconvert import ffmpeg_argv
from mc_tasks.local.mediaconvert.api_errors import BadRequest
from mc_tasks.local.mediaconvert.model import service_model
from mc_tasks.local.mediaconvert.naming import destination_prefix_and_base, parse_s3_uri
from mc_tasks.local.mediaconvert.plan import plan_job
from mc_tasks.local.mediaconvert.wire import from_wire, to_wire
from tests.local.conftest import INPUT_URI, job_settings


def settings() -> dict[str, Any]:
    return job_settings(INPUT_URI, "s3://media/out/")


def test_ffmpeg_argv_reads_input_once(tmp_path: Path) -> None:
    argv = ffmpeg_argv(settings(), tmp_path / "clip.mp4", tmp_path / "out")

    assert argv[0] == "ffmpeg"
    assert argv.count("-i") == 1
    assert argv[argv.index("-i") + 1] == str(tmp_path / "clip.mp4")


def test_ffmpeg_argv_names_outputs_as_mediaconvert(tmp_path: Path) -> None:
    argv = ffmpeg_argv(settings(), tmp_path / "clip.mp4", tmp_path / "out")

    assert str(tmp_path / "out" / "g0" / "clip_sd.mp4") in argv
    assert argv[argv.index("-master_pl_name") + 1] == "clip.m3u8"
    assert str(tmp_path / "out" / "g1" / "clip%v_%05d.ts") in argv
    assert str(tmp_path / "out" / "g2" / "clip_thumb.%07d.jpg") in argv
    assert argv[argv.index("-var_stream_map") + 1] == (
        "v:0,a:0,name:_180p v:1,a:1,name:_144p v:2,a:2,name:_90p")


def test_cbr_output_gets_constant_rate_arguments(tmp_path: Path) -> None:
    argv = ffmpeg_argv(settings(), tmp_path / "clip.mp4", tmp_path / "out")

    assert argv[argv.index("-b:v") + 1] == "300000"
    assert argv[argv.index("-maxrate:v") + 1] == "300000"
    assert argv[argv.index("-level:v") + 1] == "3"


def test_unknown_setting_is_rejected_with_its_path() -> None:
    document = settings()
    document["Inputs"][0]["ImageInserter"] = {"InsertableImages": []}

    with pytest.raises(BadRequest) as excinfo:
        plan_job(document)

    assert excinfo.value.message.startswith("Settings.Inputs[0].ImageInserter=")
    assert "is not supported by the local MediaConvert" in excinfo.value.message


def test_unsupported_value_is_rejected_with_its_path() -> None:
    document = settings()
    aac = document["OutputGroups"][0]["Outputs"][0]["AudioDescriptions"][0]["CodecSettings"]
    aac["AacSettings"]["CodingMode"] = "CODING_MODE_5_1"

    with pytest.raises(BadRequest) as excinfo:
        plan_job(document)

    assert ("Settings.OutputGroups[0].Outputs[0].AudioDescriptions[0].CodecSettings"
            ".AacSettings.CodingMode=CODING_MODE_5_1") in excinfo.value.message


def test_hls_output_without_name_modifier_is_rejected() -> None:
    document = settings()
    del document["OutputGroups"][1]["Outputs"][0]["NameModifier"]

    with pytest.raises(BadRequest) as excinfo:
        plan_job(document)

    assert "Settings.OutputGroups[1].Outputs[0].NameModifier is missing" in excinfo.value.message


def test_cbr_without_bitrate_is_rejected() -> None:
    document = settings()
    video = document["OutputGroups"][0]["Outputs"][0]["VideoDescription"]
    del video["CodecSettings"]["H264Settings"]["Bitrate"]

    with pytest.raises(BadRequest) as excinfo:
        plan_job(document)

    assert "H264Settings.Bitrate is missing" in excinfo.value.message


def test_two_inputs_are_rejected() -> None:
    document = settings()
    document["Inputs"].append(dict(document["Inputs"][0]))

    with pytest.raises(BadRequest) as excinfo:
        plan_job(document)

    assert "exactly one input" in excinfo.value.message


def test_destination_with_name_replaces_input_base_name() -> None:
    prefix, base = destination_prefix_and_base(parse_s3_uri("s3://media/out/movie", "D"), "clip")

    assert str(prefix) == "s3://media/out/"
    assert base == "movie"


def test_destination_prefix_keeps_input_base_name() -> None:
    prefix, base = destination_prefix_and_base(parse_s3_uri("s3://media/out/", "D"), "clip")

    assert str(prefix) == "s3://media/out/"
    assert base == "clip"


def test_wire_names_convert_to_api_names_and_back() -> None:
    shape = service_model().shape_for("JobSettings")
    wire = {"inputs": [{"fileInput": INPUT_URI, "audioSelectors": {
        "Audio Selector 1": {"defaultSelection": "DEFAULT"}}}]}

    api = from_wire(shape, wire, "Settings")

    assert api == {"Inputs": [{"FileInput": INPUT_URI, "AudioSelectors": {
        "Audio Selector 1": {"DefaultSelection": "DEFAULT"}}}]}
    assert to_wire(shape, api) == wire


def test_wire_value_outside_model_enum_is_rejected() -> None:
    shape = service_model().shape_for("JobSettings")
    wire = {"inputs": [{"fileInput": INPUT_URI, "timecodeSource": "SOMETIMES"}]}

    with pytest.raises(BadRequest) as excinfo:
        from_wire(shape, wire, "Settings")

    assert "Settings.Inputs[0].TimecodeSource=SOMETIMES is invalid" in excinfo.value.message


def test_wire_value_of_wrong_type_is_rejected() -> None:
    shape = service_model().shape_for("VideoDescription")

    with pytest.raises(BadRequest) as excinfo:
        from_wire(shape, {"width": "wide"}, "VideoDescription")

    assert "VideoDescription.Width must be of type integer" in excinfo.value.message
