"""The subset of MediaConvert job settings the local server implements.

:data:`JOB_SETTINGS` lists every member it accepts, by API member name, with
the values it accepts. A member that is not listed, or a value outside its
listed values, is rejected at CreateJob with a BadRequest naming the member
path and value, so no requested setting is silently ignored. Members marked
:data:`ANY` either change the output (and are implemented) or do not change
what a player or a caller sees (time codes, transport stream PIDs, encoder
tuning), so accepting them is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from mc_tasks.local.mediaconvert.api_errors import BadRequest


class _Any:
    def __repr__(self) -> str:
        return "ANY"


#: Marks a member whose every value is accepted.
ANY = _Any()


@dataclass(frozen=True)
class ListOf:
    item: Spec


@dataclass(frozen=True)
class MapOf:
    value: Spec


Spec: TypeAlias = "_Any | frozenset[Any] | Mapping[str, Spec] | ListOf | MapOf"

_H264_LEVELS = frozenset({
    "AUTO", "LEVEL_1", "LEVEL_1_1", "LEVEL_1_2", "LEVEL_1_3", "LEVEL_2", "LEVEL_2_1",
    "LEVEL_2_2", "LEVEL_3", "LEVEL_3_1", "LEVEL_3_2", "LEVEL_4", "LEVEL_4_1", "LEVEL_4_2",
    "LEVEL_5", "LEVEL_5_1", "LEVEL_5_2",
})

H264_SETTINGS: Mapping[str, Spec] = {
    "RateControlMode": frozenset({"CBR", "VBR", "QVBR"}),
    "Bitrate": ANY,
    "MaxBitrate": ANY,
    "QvbrSettings": {"QvbrQualityLevel": ANY, "QvbrQualityLevelFineTune": ANY,
                     "MaxAverageBitrate": ANY},
    "GopSize": ANY,
    "GopSizeUnits": frozenset({"FRAMES", "SECONDS", "AUTO"}),
    "CodecProfile": frozenset({"BASELINE", "MAIN", "HIGH"}),
    "CodecLevel": _H264_LEVELS,
    "SceneChangeDetect": frozenset({"ENABLED", "DISABLED", "TRANSITION_DETECTION"}),
    "FramerateControl": frozenset({"INITIALIZE_FROM_SOURCE", "SPECIFIED"}),
    "FramerateNumerator": ANY,
    "FramerateDenominator": ANY,
    "NumberBFramesBetweenReferenceFrames": ANY,
    "NumberReferenceFrames": ANY,
    "HrdBufferSize": ANY,
    "EntropyEncoding": frozenset({"CABAC", "CAVLC"}),
    "InterlaceMode": frozenset({"PROGRESSIVE"}),
    "ParControl": frozenset({"INITIALIZE_FROM_SOURCE"}),
    "Telecine": frozenset({"NONE"}),
    "SlowPal": frozenset({"DISABLED"}),
    "Syntax": frozenset({"DEFAULT"}),
    "FieldEncoding": frozenset({"PAFF"}),
    # Encoder tuning with no counterpart in this server's libx264 arguments.
    "QualityTuningLevel": ANY,
    "AdaptiveQuantization": ANY,
    "SpatialAdaptiveQuantization": ANY,
    "TemporalAdaptiveQuantization": ANY,
    "FlickerAdaptiveQuantization": ANY,
    "GopBReference": ANY,
    "GopClosedCadence": ANY,
    "MinIInterval": ANY,
    "HrdBufferInitialFillPercentage": ANY,
    "HrdBufferFinalFillPercentage": ANY,
    "RepeatPps": ANY,
    "Slices": ANY,
    "Softness": ANY,
    "DynamicSubGop": ANY,
    "UnregisteredSeiTimecode": ANY,
    "FramerateConversionAlgorithm": ANY,
}

FRAME_CAPTURE_SETTINGS: Mapping[str, Spec] = {
    "FramerateNumerator": ANY,
    "FramerateDenominator": ANY,
    "MaxCaptures": ANY,
    "Quality": ANY,
}

VIDEO_DESCRIPTION: Mapping[str, Spec] = {
    "Width": ANY,
    "Height": ANY,
    "ScalingBehavior": frozenset({"DEFAULT", "STRETCH_TO_OUTPUT"}),
    "CodecSettings": {
        "Codec": frozenset({"H_264", "FRAME_CAPTURE"}),
        "H264Settings": H264_SETTINGS,
        "FrameCaptureSettings": FRAME_CAPTURE_SETTINGS,
    },
    "AfdSignaling": frozenset({"NONE"}),
    "RespondToAfd": frozenset({"NONE"}),
    "AntiAlias": ANY,
    "ColorMetadata": ANY,
    "DropFrameTimecode": ANY,
    "TimecodeInsertion": frozenset({"DISABLED"}),
    "Sharpness": ANY,
}

AUDIO_DESCRIPTION: Mapping[str, Spec] = {
    "CodecSettings": {
        "Codec": frozenset({"AAC"}),
        "AacSettings": {
            "Bitrate": ANY,
            "CodingMode": frozenset({"CODING_MODE_1_0", "CODING_MODE_2_0"}),
            "SampleRate": ANY,
            "CodecProfile": frozenset({"LC"}),
            "RateControlMode": frozenset({"CBR"}),
            "RawFormat": frozenset({"NONE"}),
            "Specification": frozenset({"MPEG4"}),
            "AudioDescriptionBroadcasterMix": frozenset({"NORMAL"}),
        },
    },
    "AudioSourceName": ANY,
    "AudioTypeControl": ANY,
    "AudioType": ANY,
    "LanguageCodeControl": ANY,
    "LanguageCode": ANY,
    "StreamName": ANY,
}

OUTPUT: Mapping[str, Spec] = {
    "NameModifier": ANY,
    "Extension": ANY,
    "ContainerSettings": {
        "Container": frozenset({"MP4", "M3U8", "RAW"}),
        "Mp4Settings": {"CslgAtom": ANY, "FreeSpaceBox": ANY, "MoovPlacement": ANY,
                        "CttsVersion": ANY, "AudioDuration": ANY},
        # Transport stream identifiers and intervals; players do not depend on them.
        "M3u8Settings": MapOf(ANY),
    },
    "VideoDescription": VIDEO_DESCRIPTION,
    "AudioDescriptions": ListOf(AUDIO_DESCRIPTION),
    "OutputSettings": {"HlsSettings": {"IFrameOnlyManifest": frozenset({"EXCLUDE"}),
                                       "AudioTrackType": ANY, "SegmentModifier": ANY}},
}

OUTPUT_GROUP: Mapping[str, Spec] = {
    "Name": ANY,
    "CustomName": ANY,
    "OutputGroupSettings": {
        "Type": frozenset({"FILE_GROUP_SETTINGS", "HLS_GROUP_SETTINGS"}),
        "FileGroupSettings": {"Destination": ANY},
        "HlsGroupSettings": {
            "Destination": ANY,
            "SegmentLength": ANY,
            "MinSegmentLength": ANY,
            "SegmentControl": frozenset({"SEGMENTED_FILES"}),
            "DirectoryStructure": frozenset({"SINGLE_DIRECTORY"}),
            "OutputSelection": frozenset({"MANIFESTS_AND_SEGMENTS"}),
            "StreamInfResolution": frozenset({"INCLUDE"}),
            "ManifestCompression": frozenset({"NONE"}),
            "ProgramDateTime": frozenset({"EXCLUDE"}),
            "ManifestDurationFormat": ANY,
            "CodecSpecification": ANY,
            "ClientCache": ANY,
            "TimedMetadataId3Frame": ANY,
            "TimedMetadataId3Period": ANY,
            "SegmentLengthControl": ANY,
        },
    },
    "Outputs": ListOf(OUTPUT),
}

INPUT: Mapping[str, Spec] = {
    "FileInput": ANY,
    "AudioSelectors": MapOf({"DefaultSelection": ANY, "SelectorType": frozenset({"TRACK"}),
                             "Tracks": frozenset({(1,)}), "Offset": frozenset({0})}),
    "VideoSelector": {"ColorSpace": frozenset({"FOLLOW"}), "Rotate": frozenset({"DEGREE_0"})},
    "TimecodeSource": ANY,
    "TimecodeStart": ANY,
    "DeblockFilter": frozenset({"DISABLED"}),
    "DenoiseFilter": frozenset({"DISABLED"}),
    "FilterEnable": frozenset({"AUTO"}),
    "PsiControl": frozenset({"USE_PSI"}),
    "InputScanType": frozenset({"AUTO"}),
}

JOB_SETTINGS: Mapping[str, Spec] = {
    "Inputs": ListOf(INPUT),
    "OutputGroups": ListOf(OUTPUT_GROUP),
    "TimecodeConfig": {"Source": ANY, "Start": ANY},
    "FollowSource": ANY,
}


def check_supported(value: Any, spec: Spec, path: str) -> None:
    """Raise BadRequest naming the first member of ``value`` that ``spec`` does not accept."""
    if isinstance(spec, _Any):
        return
    if isinstance(spec, frozenset):
        comparable = tuple(value) if isinstance(value, list) else value
        if comparable not in spec:
            raise _unsupported(path, value, sorted(map(str, spec)))
        return
    if isinstance(spec, ListOf):
        for index, item in enumerate(value):
            check_supported(item, spec.item, f"{path}[{index}]")
        return
    if isinstance(spec, MapOf):
        for key, item in value.items():
            check_supported(item, spec.value, f"{path}.{key}")
        return
    # Known members first, so a rejected value (Codec=AV1) is named before the
    # settings member that goes with it (Av1Settings).
    for key in (key for key in value if key in spec):
        check_supported(value[key], spec[key], f"{path}.{key}")
    for key in (key for key in value if key not in spec):
        raise _unsupported(f"{path}.{key}", value[key], None)


def _unsupported(path: str, value: Any, supported: list[str] | None) -> BadRequest:
    shown_value = value
    if not isinstance(value, str | int | float):
        shown_value = json.dumps(value, sort_keys=True)
    hint = f" (supported: {', '.join(supported)})" if supported else ""
    return BadRequest(f"{path}={shown_value} is not supported by the local MediaConvert{hint}.")
