"""Turn a job's Settings into a checked plan of what to transcode and where to write it.

:func:`plan_job` first checks every member against :mod:`support`, then
checks the combinations MediaConvert itself requires (a codec's settings
member, a bitrate for CBR and VBR, containers that fit their output group),
and returns a :class:`JobPlan` that :mod:`transcode` turns into ffmpeg
arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mc_tasks.local.mediaconvert.api_errors import BadRequest
from mc_tasks.local.mediaconvert.naming import (
    S3Uri,
    check_name_modifier,
    destination_prefix_and_base,
    input_base_name,
    parse_s3_uri,
)
from mc_tasks.local.mediaconvert.support import JOB_SETTINGS, check_supported

#: HLS segment length when HlsGroupSettings.SegmentLength is absent (MediaConvert's default).
DEFAULT_HLS_SEGMENT_LENGTH_S = 10
#: QVBR quality level when QvbrSettings.QvbrQualityLevel is absent.
DEFAULT_QVBR_QUALITY_LEVEL = 7
#: JPEG quality (1-100) when FrameCaptureSettings.Quality is absent.
DEFAULT_FRAME_CAPTURE_QUALITY = 80

_GROUP_KINDS = {"FILE_GROUP_SETTINGS": "FILE_GROUP", "HLS_GROUP_SETTINGS": "HLS_GROUP"}
_DEFAULT_EXTENSIONS = {"MP4": "mp4", "RAW": "jpg", "M3U8": "m3u8"}


@dataclass(frozen=True)
class H264Plan:
    rate_control: str
    bitrate_bps: int | None
    max_bitrate_bps: int | None
    qvbr_quality_level: int
    gop_size: float | None
    gop_units: str
    profile: str | None
    level: str
    scene_change_detect: bool
    framerate: tuple[int, int] | None
    b_frames: int | None
    reference_frames: int | None
    hrd_buffer_size_bits: int | None
    entropy_encoding: str | None


@dataclass(frozen=True)
class FrameCapturePlan:
    rate: tuple[int, int]
    max_captures: int | None
    quality: int


@dataclass(frozen=True)
class VideoPlan:
    width: int | None
    height: int | None
    stretch: bool
    h264: H264Plan | None
    frame_capture: FrameCapturePlan | None


@dataclass(frozen=True)
class AudioPlan:
    bitrate_bps: int | None
    channels: int
    sample_rate_hz: int | None


@dataclass(frozen=True)
class OutputPlan:
    container: str
    name_modifier: str
    extension: str
    video: VideoPlan | None
    audio: AudioPlan | None

    def file_stem(self, base: str) -> str:
        return f"{base}{self.name_modifier}"


@dataclass(frozen=True)
class GroupPlan:
    kind: str
    prefix: S3Uri
    base: str
    outputs: tuple[OutputPlan, ...]
    segment_length_s: int
    min_segment_length_s: int


@dataclass(frozen=True)
class JobPlan:
    input_uri: S3Uri
    groups: tuple[GroupPlan, ...]


def plan_job(settings: Mapping[str, Any]) -> JobPlan:
    """Check ``settings`` (API member names) and return the plan; raise BadRequest naming a path."""
    check_supported(settings, JOB_SETTINGS, "Settings")
    inputs = settings.get("Inputs", [])
    if len(inputs) != 1:
        raise BadRequest(f"Settings.Inputs has {len(inputs)} inputs: the local MediaConvert "
                         "supports exactly one input.")
    file_input = inputs[0].get("FileInput")
    if not file_input:
        raise BadRequest("Settings.Inputs[0].FileInput is missing: give an s3:// URI.")
    input_uri = parse_s3_uri(file_input, "Settings.Inputs[0].FileInput")
    groups_settings = settings.get("OutputGroups", [])
    if not groups_settings:
        raise BadRequest("Settings.OutputGroups is empty: give at least one output group.")

    base = input_base_name(file_input)
    groups = tuple(_plan_group(group, base, f"Settings.OutputGroups[{index}]")
                   for index, group in enumerate(groups_settings))
    return JobPlan(input_uri, groups)


def _plan_group(group: Mapping[str, Any], input_base: str, path: str) -> GroupPlan:
    group_settings = group.get("OutputGroupSettings", {})
    type_name = group_settings.get("Type")
    if type_name is None:
        raise BadRequest(f"{path}.OutputGroupSettings.Type is missing.")
    kind = _GROUP_KINDS[type_name]
    member = "FileGroupSettings" if kind == "FILE_GROUP" else "HlsGroupSettings"
    specific = group_settings.get(member)
    if specific is None or not specific.get("Destination"):
        raise BadRequest(f"{path}.OutputGroupSettings.{member}.Destination is missing: "
                         "give an s3:// URI.")
    destination = parse_s3_uri(specific["Destination"],
                               f"{path}.OutputGroupSettings.{member}.Destination")
    prefix, base = destination_prefix_and_base(destination, input_base)

    outputs_settings = group.get("Outputs", [])
    if not outputs_settings:
        raise BadRequest(f"{path}.Outputs is empty: give at least one output.")
    outputs = tuple(_plan_output(output, kind, f"{path}.Outputs[{index}]")
                    for index, output in enumerate(outputs_settings))
    _check_unique_names(outputs, kind, path)

    segment_length_s = int(specific.get("SegmentLength", DEFAULT_HLS_SEGMENT_LENGTH_S))
    min_segment_length_s = int(specific.get("MinSegmentLength", 0))
    if kind == "HLS_GROUP" and segment_length_s < 1:
        raise BadRequest(f"{path}.OutputGroupSettings.HlsGroupSettings.SegmentLength="
                         f"{segment_length_s} is invalid: give at least 1 second.")
    return GroupPlan(kind, prefix, base, outputs, segment_length_s, min_segment_length_s)


def _check_unique_names(outputs: tuple[OutputPlan, ...], kind: str, path: str) -> None:
    seen: set[tuple[str, str]] = set()
    for index, output in enumerate(outputs):
        if kind == "HLS_GROUP" and not output.name_modifier:
            raise BadRequest(f"{path}.Outputs[{index}].NameModifier is missing: each HLS "
                             "output needs one, or its playlist would replace the main one.")
        name = (output.name_modifier, output.extension)
        if name in seen:
            raise BadRequest(f"{path}.Outputs[{index}].NameModifier={output.name_modifier} "
                             "repeats the name of another output in the group: make it unique.")
        seen.add(name)


def _plan_output(output: Mapping[str, Any], kind: str, path: str) -> OutputPlan:
    container = output.get("ContainerSettings", {}).get("Container")
    allowed = {"FILE_GROUP": ("MP4", "RAW"), "HLS_GROUP": ("M3U8",)}[kind]
    if container not in allowed:
        raise BadRequest(f"{path}.ContainerSettings.Container={container} is not supported by "
                         f"the local MediaConvert in a {kind} (supported: {', '.join(allowed)}).")
    name_modifier = output.get("NameModifier", "")
    check_name_modifier(name_modifier, f"{path}.NameModifier")
    extension = output.get("Extension") or _DEFAULT_EXTENSIONS[container]
    check_name_modifier(extension, f"{path}.Extension")

    video_settings = output.get("VideoDescription")
    video = _plan_video(video_settings, f"{path}.VideoDescription") if video_settings else None
    audio_list = output.get("AudioDescriptions", [])
    if len(audio_list) > 1:
        raise BadRequest(f"{path}.AudioDescriptions has {len(audio_list)} entries: the local "
                         "MediaConvert supports at most one audio track per output.")
    audio = _plan_audio(audio_list[0], f"{path}.AudioDescriptions[0]") if audio_list else None

    codec_path = f"{path}.VideoDescription.CodecSettings.Codec"
    if container == "RAW" and (video is None or video.frame_capture is None or audio):
        raise BadRequest(f"{path}: a RAW output must have a FRAME_CAPTURE video codec and no "
                         "audio.")
    if container != "RAW" and video is not None and video.h264 is None:
        raise BadRequest(f"{codec_path}=FRAME_CAPTURE needs ContainerSettings.Container=RAW.")
    if video is None and audio is None:
        raise BadRequest(f"{path} has neither VideoDescription nor AudioDescriptions.")
    return OutputPlan(container, name_modifier, extension, video, audio)


def _plan_video(video: Mapping[str, Any], path: str) -> VideoPlan:
    width, height = video.get("Width"), video.get("Height")
    for name, value in (("Width", width), ("Height", height)):
        if value is not None and (value < 32 or value % 2):
            raise BadRequest(f"{path}.{name}={value} is not supported by the local "
                             "MediaConvert: give an even number of at least 32.")
    stretch = video.get("ScalingBehavior", "DEFAULT") == "STRETCH_TO_OUTPUT"
    codec_settings = video.get("CodecSettings", {})
    codec = codec_settings.get("Codec")
    if codec == "H_264":
        settings = codec_settings.get("H264Settings")
        if settings is None:
            raise BadRequest(f"{path}.CodecSettings.H264Settings is missing for Codec=H_264.")
        return VideoPlan(width, height, stretch, _plan_h264(settings, path), None)
    if codec == "FRAME_CAPTURE":
        settings = codec_settings.get("FrameCaptureSettings", {})
        capture = FrameCapturePlan(
            rate=(int(settings.get("FramerateNumerator", 1)),
                  int(settings.get("FramerateDenominator", 1))),
            max_captures=settings.get("MaxCaptures"),
            quality=int(settings.get("Quality", DEFAULT_FRAME_CAPTURE_QUALITY)),
        )
        return VideoPlan(width, height, stretch, None, capture)
    raise BadRequest(f"{path}.CodecSettings.Codec is missing: give H_264 or FRAME_CAPTURE.")


def _plan_h264(settings: Mapping[str, Any], path: str) -> H264Plan:
    h264_path = f"{path}.CodecSettings.H264Settings"
    mode = settings.get("RateControlMode", "CBR")
    bitrate, max_bitrate = settings.get("Bitrate"), settings.get("MaxBitrate")
    if mode in ("CBR", "VBR") and bitrate is None:
        raise BadRequest(f"{h264_path}.Bitrate is missing: RateControlMode={mode} needs it.")
    if mode == "QVBR" and max_bitrate is None:
        raise BadRequest(f"{h264_path}.MaxBitrate is missing: RateControlMode=QVBR needs it.")

    framerate = None
    if settings.get("FramerateControl") == "SPECIFIED":
        numerator = settings.get("FramerateNumerator")
        denominator = settings.get("FramerateDenominator")
        if not numerator or not denominator:
            raise BadRequest(f"{h264_path}.FramerateNumerator and FramerateDenominator are "
                             "needed with FramerateControl=SPECIFIED.")
        framerate = (int(numerator), int(denominator))
    qvbr = settings.get("QvbrSettings", {})
    return H264Plan(
        rate_control=mode,
        bitrate_bps=bitrate,
        max_bitrate_bps=max_bitrate,
        qvbr_quality_level=int(qvbr.get("QvbrQualityLevel", DEFAULT_QVBR_QUALITY_LEVEL)),
        gop_size=settings.get("GopSize"),
        gop_units=settings.get("GopSizeUnits", "FRAMES"),
        profile=settings.get("CodecProfile"),
        level=settings.get("CodecLevel", "AUTO"),
        scene_change_detect=settings.get("SceneChangeDetect", "ENABLED") != "DISABLED",
        framerate=framerate,
        b_frames=settings.get("NumberBFramesBetweenReferenceFrames"),
        reference_frames=settings.get("NumberReferenceFrames"),
        hrd_buffer_size_bits=settings.get("HrdBufferSize"),
        entropy_encoding=settings.get("EntropyEncoding"),
    )


def _plan_audio(audio: Mapping[str, Any], path: str) -> AudioPlan:
    codec_settings = audio.get("CodecSettings", {})
    if codec_settings.get("Codec") != "AAC" or "AacSettings" not in codec_settings:
        raise BadRequest(f"{path}.CodecSettings needs Codec=AAC and AacSettings.")
    aac = codec_settings["AacSettings"]
    channels = 1 if aac.get("CodingMode") == "CODING_MODE_1_0" else 2
    return AudioPlan(aac.get("Bitrate"), channels, aac.get("SampleRate"))
