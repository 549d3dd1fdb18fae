"""Output group builders for common jobs: an MP4 file, an HLS ladder, JPEG thumbnails.

Each builder returns one MediaConvert ``OutputGroup`` (a dict in the PascalCase
shape of the CreateJob API) that writes under the ``destination`` it is given.
A preset is a named builder: :func:`mc_tasks.submit.submit_transcode` accepts
the names ``"mp4"``, ``"hls"`` and ``"thumbnails"`` or preset objects
(:class:`Mp4Preset`, :class:`HlsPreset`, :class:`ThumbnailPreset`, or anything
matching :class:`Preset`), and puts each preset's group in the subfolder named
after the preset, for example ``<prefix>hls/``.

Video is H.264 in QVBR rate control (MediaConvert picks the bitrate for a
quality level, capped by ``MaxBitrate``) and audio is stereo AAC. Output names
follow MediaConvert: ``<input base name><NameModifier>.<extension>``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mc_tasks.errors import InvalidJobError

#: Default ladder, 720p and below, after the QVBR presets of AWS's
#: "Video on Demand on AWS" solution (README, version 4.2 and later).
HLS_720P_MAX_BITRATE_BPS = 5_000_000
HLS_540P_MAX_BITRATE_BPS = 3_500_000
HLS_360P_MAX_BITRATE_BPS = 1_200_000
HLS_720P_QVBR_LEVEL = 8
HLS_540P_QVBR_LEVEL = 7
HLS_360P_QVBR_LEVEL = 7
#: Seconds of video in each HLS segment (MediaConvert's default is 10).
HLS_SEGMENT_LENGTH_S = 6

MP4_WIDTH = 1280
MP4_HEIGHT = 720
MP4_MAX_BITRATE_BPS = 5_000_000
MP4_QVBR_LEVEL = 8

AAC_BITRATE_BPS = 96_000
AAC_SAMPLE_RATE_HZ = 48_000
#: Seconds between two key frames. It divides the HLS segment length, so every
#: segment starts on a key frame.
GOP_LENGTH_S = 2.0

#: One thumbnail every this many seconds of video.
THUMBNAIL_INTERVAL_S = 10
#: Maximum thumbnails per job.
THUMBNAIL_MAX_CAPTURES = 10
THUMBNAIL_WIDTH = 640
THUMBNAIL_HEIGHT = 360
#: JPEG quality, 1 to 100.
THUMBNAIL_QUALITY = 80

#: MediaConvert's limits on an output's frame size, in pixels.
MIN_FRAME_SIDE_PX = 32
MAX_FRAME_SIDE_PX = 8192
#: MediaConvert's limits on a QVBR quality level.
MIN_QVBR_LEVEL = 1
MAX_QVBR_LEVEL = 10
#: MediaConvert's minimum H.264 bitrate, in bits per second.
MIN_VIDEO_BITRATE_BPS = 1000

#: Name of the audio selector that every preset job's input defines.
AUDIO_SELECTOR = "Audio Selector 1"


@dataclass(frozen=True)
class Rendition:
    """One HLS rendition: frame size, QVBR quality and maximum bitrate.

    ``name_modifier`` defaults to ``_<height>p`` and must be unique in a ladder.
    """

    width: int
    height: int
    max_bitrate_bps: int
    qvbr_level: int = 7
    audio_bitrate_bps: int = AAC_BITRATE_BPS
    name_modifier: str = ""

    def __post_init__(self) -> None:
        check_frame_size(self.width, self.height)
        if self.max_bitrate_bps < MIN_VIDEO_BITRATE_BPS:
            raise InvalidJobError(
                f"Invalid rendition max_bitrate_bps {self.max_bitrate_bps}: use at least "
                f"{MIN_VIDEO_BITRATE_BPS} bits per second."
            )
        if not MIN_QVBR_LEVEL <= self.qvbr_level <= MAX_QVBR_LEVEL:
            raise InvalidJobError(
                f"Invalid rendition qvbr_level {self.qvbr_level}: use {MIN_QVBR_LEVEL} to "
                f"{MAX_QVBR_LEVEL}."
            )
        if not self.name_modifier:
            object.__setattr__(self, "name_modifier", f"_{self.height}p")


def check_frame_size(width: int, height: int) -> None:
    """Check that an output frame size is even and within MediaConvert's limits."""
    for side_name, side in (("width", width), ("height", height)):
        if not MIN_FRAME_SIDE_PX <= side <= MAX_FRAME_SIDE_PX or side % 2:
            raise InvalidJobError(
                f"Invalid output {side_name} {side}: use an even number of pixels from "
                f"{MIN_FRAME_SIDE_PX} to {MAX_FRAME_SIDE_PX}."
            )


#: Default HLS ladder: 1280x720, 960x540 and 640x360.
DEFAULT_HLS_RENDITIONS: tuple[Rendition, ...] = (
    Rendition(1280, 720, HLS_720P_MAX_BITRATE_BPS, HLS_720P_QVBR_LEVEL),
    Rendition(960, 540, HLS_540P_MAX_BITRATE_BPS, HLS_540P_QVBR_LEVEL),
    Rendition(640, 360, HLS_360P_MAX_BITRATE_BPS, HLS_360P_QVBR_LEVEL),
)


def h264_video(width: int, height: int, *, max_bitrate_bps: int, qvbr_level: int
               ) -> dict[str, Any]:
    """Return a ``VideoDescription`` for H.264 QVBR at ``width`` x ``height``."""
    return {
        "Width": width,
        "Height": height,
        "CodecSettings": {
            "Codec": "H_264",
            "H264Settings": {
                "RateControlMode": "QVBR",
                "MaxBitrate": max_bitrate_bps,
                "QvbrSettings": {"QvbrQualityLevel": qvbr_level},
                "GopSize": GOP_LENGTH_S,
                "GopSizeUnits": "SECONDS",
                "CodecProfile": "MAIN",
                "CodecLevel": "AUTO",
                "SceneChangeDetect": "TRANSITION_DETECTION",
                "FramerateControl": "INITIALIZE_FROM_SOURCE",
            },
        },
    }


def aac_audio(bitrate_bps: int = AAC_BITRATE_BPS) -> list[dict[str, Any]]:
    """Return ``AudioDescriptions`` for one stereo AAC track from the default selector."""
    return [{
        "AudioSourceName": AUDIO_SELECTOR,
        "CodecSettings": {
            "Codec": "AAC",
            "AacSettings": {
                "Bitrate": bitrate_bps,
                "CodingMode": "CODING_MODE_2_0",
                "SampleRate": AAC_SAMPLE_RATE_HZ,
            },
        },
    }]


def input_settings(input_uri: str) -> dict[str, Any]:
    """Return the job ``Input`` for ``input_uri`` with its default video and audio selectors."""
    return {
        "FileInput": input_uri,
        "AudioSelectors": {AUDIO_SELECTOR: {"DefaultSelection": "DEFAULT"}},
        "VideoSelector": {},
        "TimecodeSource": "ZEROBASED",
    }


def mp4_output_group(destination: str, *, width: int = MP4_WIDTH, height: int = MP4_HEIGHT,
                     max_bitrate_bps: int = MP4_MAX_BITRATE_BPS, qvbr_level: int = MP4_QVBR_LEVEL,
                     audio_bitrate_bps: int = AAC_BITRATE_BPS, name_modifier: str = "_mp4",
                     ) -> dict[str, Any]:
    """Return a file group writing one H.264/AAC MP4 to ``<destination><base><modifier>.mp4``."""
    rendition = Rendition(width, height, max_bitrate_bps, qvbr_level, audio_bitrate_bps,
                          name_modifier)
    return {
        "Name": "File Group",
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": destination},
        },
        "Outputs": [{
            "NameModifier": rendition.name_modifier,
            "Extension": "mp4",
            "ContainerSettings": {"Container": "MP4"},
            "VideoDescription": h264_video(rendition.width, rendition.height,
                                           max_bitrate_bps=rendition.max_bitrate_bps,
                                           qvbr_level=rendition.qvbr_level),
            "AudioDescriptions": aac_audio(rendition.audio_bitrate_bps),
        }],
    }


def hls_output_group(destination: str, *, renditions: Sequence[Rendition] = DEFAULT_HLS_RENDITIONS,
                     segment_length_s: int = HLS_SEGMENT_LENGTH_S) -> dict[str, Any]:
    """Return an HLS group with one output (video and audio muxed) per rendition.

    MediaConvert writes the master playlist ``<destination><base>.m3u8`` and a
    playlist and TS segments per rendition.
    """
    if not renditions:
        raise InvalidJobError("The HLS ladder is empty: pass at least one Rendition.")
    modifiers = [rendition.name_modifier for rendition in renditions]
    duplicates = sorted({modifier for modifier in modifiers if modifiers.count(modifier) > 1})
    if duplicates:
        raise InvalidJobError(
            f"HLS renditions share the name modifier(s) {', '.join(duplicates)}, so their files "
            "would overwrite each other: give each Rendition a distinct name_modifier."
        )
    if segment_length_s < 1:
        raise InvalidJobError(
            f"Invalid HLS segment length {segment_length_s} s: use at least 1 second."
        )

    outputs = [
        {
            "NameModifier": rendition.name_modifier,
            "ContainerSettings": {"Container": "M3U8"},
            "VideoDescription": h264_video(rendition.width, rendition.height,
                                           max_bitrate_bps=rendition.max_bitrate_bps,
                                           qvbr_level=rendition.qvbr_level),
            "AudioDescriptions": aac_audio(rendition.audio_bitrate_bps),
        }
        for rendition in renditions
    ]
    return {
        "Name": "Apple HLS",
        "OutputGroupSettings": {
            "Type": "HLS_GROUP_SETTINGS",
            "HlsGroupSettings": {
                "Destination": destination,
                "SegmentLength": segment_length_s,
                "MinSegmentLength": 0,
            },
        },
        "Outputs": outputs,
    }


def thumbnail_output_group(destination: str, *, interval_s: int = THUMBNAIL_INTERVAL_S,
                           max_captures: int = THUMBNAIL_MAX_CAPTURES,
                           width: int = THUMBNAIL_WIDTH, height: int = THUMBNAIL_HEIGHT,
                           quality: int = THUMBNAIL_QUALITY, name_modifier: str = "_thumb",
                           ) -> dict[str, Any]:
    """Return a file group capturing one JPEG every ``interval_s`` seconds.

    At most ``max_captures`` images are written, named
    ``<destination><base><modifier>.0000000.jpg``, ``.0000001.jpg`` and so on.
    """
    if interval_s < 1:
        raise InvalidJobError(f"Invalid thumbnail interval {interval_s} s: use at least 1 second.")
    if max_captures < 1:
        raise InvalidJobError(f"Invalid thumbnail max_captures {max_captures}: use at least 1.")
    if not 1 <= quality <= 100:
        raise InvalidJobError(f"Invalid thumbnail JPEG quality {quality}: use 1 to 100.")
    check_frame_size(width, height)

    return {
        "Name": "Thumbnails",
        "OutputGroupSettings": {
            "Type": "FILE_GROUP_SETTINGS",
            "FileGroupSettings": {"Destination": destination},
        },
        "Outputs": [{
            "NameModifier": name_modifier,
            "Extension": "jpg",
            "ContainerSettings": {"Container": "RAW"},
            "VideoDescription": {
                "Width": width,
                "Height": height,
                "CodecSettings": {
                    "Codec": "FRAME_CAPTURE",
                    "FrameCaptureSettings": {
                        "FramerateNumerator": 1,
                        "FramerateDenominator": interval_s,
                        "MaxCaptures": max_captures,
                        "Quality": quality,
                    },
                },
            },
        }],
    }


@runtime_checkable
class Preset(Protocol):
    """Interface of a preset: a name, which is also the output subfolder, and a group builder."""

    @property
    def name(self) -> str: ...

    def output_group(self, destination: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Mp4Preset:
    """Preset of one H.264/AAC MP4 file, built by :func:`mp4_output_group`."""

    name: str = "mp4"
    width: int = MP4_WIDTH
    height: int = MP4_HEIGHT
    max_bitrate_bps: int = MP4_MAX_BITRATE_BPS
    qvbr_level: int = MP4_QVBR_LEVEL

    def output_group(self, destination: str) -> dict[str, Any]:
        return mp4_output_group(destination, width=self.width, height=self.height,
                                max_bitrate_bps=self.max_bitrate_bps, qvbr_level=self.qvbr_level)


@dataclass(frozen=True)
class HlsPreset:
    """Preset of an HLS ladder, built by :func:`hls_output_group`."""

    name: str = "hls"
    renditions: tuple[Rendition, ...] = DEFAULT_HLS_RENDITIONS
    segment_length_s: int = HLS_SEGMENT_LENGTH_S

    def output_group(self, destination: str) -> dict[str, Any]:
        return hls_output_group(destination, renditions=self.renditions,
                                segment_length_s=self.segment_length_s)


@dataclass(frozen=True)
class ThumbnailPreset:
    """Preset of JPEG frame captures, built by :func:`thumbnail_output_group`."""

    name: str = "thumbnails"
    interval_s: int = THUMBNAIL_INTERVAL_S
    max_captures: int = THUMBNAIL_MAX_CAPTURES
    width: int = THUMBNAIL_WIDTH
    height: int = THUMBNAIL_HEIGHT
    quality: int = THUMBNAIL_QUALITY

    def output_group(self, destination: str) -> dict[str, Any]:
        return thumbnail_output_group(destination, interval_s=self.interval_s,
                                      max_captures=self.max_captures, width=self.width,
                                      height=self.height, quality=self.quality)


_PRESET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Presets selected by name.
NAMED_PRESETS: Mapping[str, Preset] = {
    "mp4": Mp4Preset(),
    "hls": HlsPreset(),
    "thumbnails": ThumbnailPreset(),
}
#: Presets of a job submitted without ``presets`` or ``job_settings``.
DEFAULT_PRESETS: tuple[str, ...] = ("mp4", "hls", "thumbnails")


def resolve_presets(presets: Sequence[str | Preset]) -> list[Preset]:
    """Turn preset names and objects into preset objects, rejecting unknown or repeated names."""
    if isinstance(presets, str):
        raise InvalidJobError(
            f"presets={presets!r} is a string: pass a list of names such as [{presets!r}]."
        )
    resolved: list[Preset] = []
    for preset in presets:
        if isinstance(preset, str):
            if preset not in NAMED_PRESETS:
                raise InvalidJobError(
                    f"Unknown preset {preset!r}: use one of {', '.join(NAMED_PRESETS)} "
                    "or a Preset object."
                )
            resolved.append(NAMED_PRESETS[preset])
        elif isinstance(preset, Preset):
            resolved.append(preset)
        else:
            raise InvalidJobError(
                f"Invalid preset {preset!r}: pass a preset name or an object with a name and "
                "an output_group(destination) method."
            )
    if not resolved:
        raise InvalidJobError("No presets given: pass at least one, for example ['mp4'].")
    for preset in resolved:
        if not _PRESET_NAME.match(preset.name):
            raise InvalidJobError(
                f"Invalid preset name {preset.name!r}: it names the output subfolder, so use "
                "1-64 letters, digits, '-' or '_'."
            )
    names = [preset.name for preset in resolved]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidJobError(
            f"Preset name(s) {', '.join(repeated)} appear more than once, so their outputs "
            "would share a folder: give each preset a distinct name."
        )
    return resolved


def is_plain_builtin_preset(preset: object) -> bool:
    """Return True for a built-in preset whose output group depends only on the destination.

    That is an :class:`Mp4Preset`, :class:`HlsPreset` or :class:`ThumbnailPreset`
    (not a subclass) whose fields are ``int`` and ``str`` values and, for the
    ladder, a tuple of :class:`Rendition` objects with such fields. Its fields
    cannot change, and its groups for two destinations differ only in the
    ``Destination`` string.
    """
    if type(preset) not in (Mp4Preset, HlsPreset, ThumbnailPreset):
        return False
    for field in dataclasses.fields(preset):  # type: ignore[arg-type]
        value = getattr(preset, field.name)
        if field.name == "renditions":
            if type(value) is not tuple or not all(map(_is_plain_rendition, value)):
                return False
        elif type(value) not in (int, str):
            return False
    return True


def _is_plain_rendition(rendition: object) -> bool:
    return type(rendition) is Rendition and all(
        type(getattr(rendition, field.name)) in (int, str)
        for field in dataclasses.fields(rendition))


def preset_output_groups(presets: Sequence[str | Preset], destination: str
                         ) -> list[dict[str, Any]]:
    """Build one output group per preset, each under ``<destination><preset name>/``."""
    return [preset.output_group(f"{destination}{preset.name}/")
            for preset in resolve_presets(presets)]


__all__ = [
    "DEFAULT_HLS_RENDITIONS",
    "DEFAULT_PRESETS",
    "NAMED_PRESETS",
    "HlsPreset",
    "Mp4Preset",
    "Preset",
    "Rendition",
    "ThumbnailPreset",
    "aac_audio",
    "check_frame_size",
    "h264_video",
    "hls_output_group",
    "input_settings",
    "is_plain_builtin_preset",
    "mp4_output_group",
    "preset_output_groups",
    "resolve_presets",
    "thumbnail_output_group",
]
