"""Outputs of a finished MediaConvert job, read from its COMPLETE event.

A COMPLETE event lists ``outputGroupDetails`` in the order of the job's output
groups. Each group has a ``type`` (``FILE_GROUP``, ``HLS_GROUP``,
``DASH_ISO_GROUP``, ``CMAF_GROUP``, ``MS_SMOOTH_GROUP``) and ``outputDetails``
with ``outputFilePaths``, ``durationInMs`` and ``videoDetails``. HLS, DASH, CMAF
and Smooth groups add ``playlistFilePaths`` (the multivariant playlists or
manifests). A frame capture output lists only its last image, for example
``s3://bucket/thumbs/name.0000036.jpg``: the earlier images carry the numbers
before it.

MediaConvert's GetJob returns only durations and video sizes, without file
paths or group types, so outputs rebuilt from GetJob (by reconciliation) have
empty path lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: File name extensions of frame capture images.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class OutputDetail:
    """One output of an output group."""

    output_file_paths: tuple[str, ...]
    duration_ms: int | None
    width: int | None
    height: int | None

    @property
    def is_image(self) -> bool:
        """True for a frame capture output, whose only path is its last image."""
        return any(path.lower().endswith(IMAGE_EXTENSIONS) for path in self.output_file_paths)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this output."""
        return {
            "output_file_paths": list(self.output_file_paths),
            "duration_ms": self.duration_ms,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class OutputGroup:
    """One output group of a finished job, with its outputs in job order."""

    type: str | None
    playlist_file_paths: tuple[str, ...]
    outputs: tuple[OutputDetail, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this group."""
        return {
            "type": self.type,
            "playlist_file_paths": list(self.playlist_file_paths),
            "outputs": [output.to_dict() for output in self.outputs],
        }


@dataclass(frozen=True)
class JobOutputs:
    """The output groups of a finished job, in the order of the job settings."""

    groups: tuple[OutputGroup, ...] = ()

    @property
    def hls_master_playlist(self) -> str | None:
        """Path of the first HLS group's multivariant playlist, or None without an HLS group."""
        for group in self.groups:
            if group.type == "HLS_GROUP" and group.playlist_file_paths:
                return group.playlist_file_paths[0]
        return None

    @property
    def playlists(self) -> list[str]:
        """Every playlist or manifest path (HLS, DASH, CMAF, Smooth), in group order."""
        return [path for group in self.groups for path in group.playlist_file_paths]

    @property
    def file_outputs(self) -> list[OutputDetail]:
        """Outputs of FILE_GROUP groups that are media files, not frame capture images."""
        return [
            output
            for group in self.groups
            if group.type == "FILE_GROUP"
            for output in group.outputs
            if not output.is_image
        ]

    @property
    def thumbnails(self) -> list[str]:
        """Path of the last image of each frame capture output, in group order."""
        return [
            path
            for group in self.groups
            for output in group.outputs
            if output.is_image
            for path in output.output_file_paths
        ]

    @property
    def last_thumbnail(self) -> str | None:
        """Path of the last image of the first frame capture output, or None."""
        thumbnails = self.thumbnails
        return thumbnails[0] if thumbnails else None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict; :meth:`from_dict` reads it back."""
        return {"groups": [group.to_dict() for group in self.groups]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobOutputs:
        """Rebuild outputs from :meth:`to_dict`'s result."""
        groups = []
        for group in data.get("groups", []):
            outputs = tuple(
                OutputDetail(
                    output_file_paths=tuple(output.get("output_file_paths", [])),
                    duration_ms=output.get("duration_ms"),
                    width=output.get("width"),
                    height=output.get("height"),
                )
                for output in group.get("outputs", [])
            )
            groups.append(OutputGroup(
                type=group.get("type"),
                playlist_file_paths=tuple(group.get("playlist_file_paths", [])),
                outputs=outputs,
            ))
        return cls(groups=tuple(groups))

    @classmethod
    def from_event_detail(cls, output_group_details: Sequence[Any]) -> JobOutputs:
        """Read ``detail.outputGroupDetails`` of a COMPLETE event.

        Raise ValueError when the value does not have the documented shape.
        """
        groups = []
        for group in _list(output_group_details, "outputGroupDetails"):
            group = _mapping(group, "outputGroupDetails[]")
            outputs = []
            for output in _list(group.get("outputDetails", []), "outputDetails"):
                output = _mapping(output, "outputDetails[]")
                video = _mapping(output.get("videoDetails") or {}, "videoDetails")
                outputs.append(OutputDetail(
                    output_file_paths=_strings(output.get("outputFilePaths", []),
                                               "outputFilePaths"),
                    duration_ms=_optional_int(output.get("durationInMs"), "durationInMs"),
                    width=_optional_int(video.get("widthInPx"), "widthInPx"),
                    height=_optional_int(video.get("heightInPx"), "heightInPx"),
                ))
            group_type = group.get("type")
            groups.append(OutputGroup(
                type=str(group_type) if group_type is not None else None,
                playlist_file_paths=_strings(group.get("playlistFilePaths", []),
                                             "playlistFilePaths"),
                outputs=tuple(outputs),
            ))
        return cls(groups=tuple(groups))

    @classmethod
    def from_get_job(cls, job: Mapping[str, Any]) -> JobOutputs:
        """Read a GetJob ``Job``: durations and video sizes, group types from its settings.

        File paths are empty because GetJob does not return them.
        """
        settings_groups = job.get("Settings", {}).get("OutputGroups", [])
        groups = []
        for index, group in enumerate(job.get("OutputGroupDetails", [])):
            group_type = None
            if index < len(settings_groups):
                group_type = settings_groups[index].get("OutputGroupSettings", {}).get("Type")
            outputs = tuple(
                OutputDetail(
                    output_file_paths=(),
                    duration_ms=output.get("DurationInMs"),
                    width=output.get("VideoDetails", {}).get("WidthInPx"),
                    height=output.get("VideoDetails", {}).get("HeightInPx"),
                )
                for output in group.get("OutputDetails", [])
            )
            groups.append(OutputGroup(type=group_type, playlist_file_paths=(), outputs=outputs))
        return cls(groups=tuple(groups))


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} is {type(value).__name__}, expected a list")
    return value


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} is {type(value).__name__}, expected an object")
    return value


def _strings(value: Any, name: str) -> tuple[str, ...]:
    items = _list(value, name)
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} contains a value that is not a string")
    return tuple(items)


def _optional_int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is {value!r}, expected a number")
    return int(value)
