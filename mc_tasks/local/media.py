"""ffmpeg and ffprobe helpers for the demo and tests: sample clips and output checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mc_tasks.errors import LocalStackError

#: Seconds allowed between an output's duration and the input's.
DURATION_TOLERANCE_S = 0.6
FFMPEG_MISSING = "{tool} was not found: install ffmpeg (Debian: apt-get install ffmpeg)."


def require_tool(tool: str) -> str:
    """Return the path of ``tool`` or raise LocalStackError saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise LocalStackError(FFMPEG_MISSING.format(tool=tool))
    return path


def make_sample_clip(path: Path, *, duration_s: float = 6.0, width: int = 1280,
                     height: int = 720) -> Path:
    """Write a test-pattern clip with a tone (H.264/AAC in MP4) to ``path``."""
    ffmpeg = require_tool("ffmpeg")
    argv = [
        ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", f"{duration_s:g}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    ]
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise LocalStackError(f"ffmpeg could not make a sample clip at {path}: "
                              f"{completed.stderr.strip()}")
    return path


@dataclass(frozen=True)
class MediaInfo:
    """Duration, codecs and size of one media file, as ffprobe reports them."""

    path: Path
    duration_s: float
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None


def probe(path: Path) -> MediaInfo:
    """Run ffprobe on ``path``; raise LocalStackError when ffprobe cannot read it."""
    ffprobe = require_tool("ffprobe")
    argv = [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            str(path)]
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise LocalStackError(f"ffprobe could not read {path}: {completed.stderr.strip()}")
    report = json.loads(completed.stdout)
    video = next((s for s in report.get("streams", []) if s.get("codec_type") == "video"), None)
    audio = next((s for s in report.get("streams", []) if s.get("codec_type") == "audio"), None)
    duration = float(report.get("format", {}).get("duration") or 0.0)
    return MediaInfo(
        path=path,
        duration_s=duration,
        video_codec=video.get("codec_name") if video else None,
        audio_codec=audio.get("codec_name") if audio else None,
        width=int(video["width"]) if video and "width" in video else None,
        height=int(video["height"]) if video and "height" in video else None,
    )


def master_playlist_variants(path: Path) -> list[str]:
    """Return the variant playlist URIs listed in an HLS master playlist, in order."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    variants = []
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF") and index + 1 < len(lines):
            variants.append(lines[index + 1])
    return variants


@dataclass(frozen=True)
class OutputCheck:
    """Result of :func:`check_outputs`: one line per checked file, and the failures."""

    lines: list[str]
    failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.failures


def check_outputs(directory: Path, *, input_duration_s: float,
                  min_renditions: int = 3) -> OutputCheck:
    """Check the MP4 files, HLS ladder and thumbnails under ``directory`` with ffprobe.

    MP4 files and every HLS rendition must be H.264 with AAC audio and last as
    long as the input; the master playlist must list at least
    ``min_renditions`` renditions, each present on disk; at least one JPEG
    thumbnail must exist.
    """
    lines: list[str] = []
    failures: list[str] = []

    def check_media(path: Path, label: str) -> MediaInfo | None:
        try:
            info = probe(path)
        except LocalStackError as exc:
            failures.append(str(exc))
            return None
        lines.append(f"{label} {path.relative_to(directory)}: {info.width}x{info.height} "
                     f"{info.video_codec}/{info.audio_codec} {info.duration_s:.2f} s")
        if info.video_codec != "h264":
            failures.append(f"{path.name}: video codec is {info.video_codec}, expected h264")
        if info.audio_codec != "aac":
            failures.append(f"{path.name}: audio codec is {info.audio_codec}, expected aac")
        if abs(info.duration_s - input_duration_s) > DURATION_TOLERANCE_S:
            failures.append(f"{path.name}: duration {info.duration_s:.2f} s, expected "
                            f"{input_duration_s:.2f} s")
        return info

    mp4_files = sorted(directory.rglob("*.mp4"))
    if not mp4_files:
        failures.append(f"no MP4 output under {directory}")
    for path in mp4_files:
        check_media(path, "MP4")

    masters = [p for p in sorted(directory.rglob("*.m3u8")) if master_playlist_variants(p)]
    if not masters:
        failures.append(f"no HLS master playlist under {directory}")
    for master in masters:
        variants = master_playlist_variants(master)
        lines.append(f"HLS master {master.relative_to(directory)}: {len(variants)} renditions")
        if len(variants) < min_renditions:
            failures.append(f"{master.name} lists {len(variants)} renditions, expected at least "
                            f"{min_renditions}")
        sizes = set()
        for variant in variants:
            variant_path = master.parent / variant
            if not variant_path.exists():
                failures.append(f"{master.name} lists {variant}, which was not written")
                continue
            info = check_media(variant_path, "  rendition")
            if info is not None:
                sizes.add((info.width, info.height))
        if len(sizes) < len(variants):
            failures.append(f"{master.name}: renditions do not all have distinct resolutions")

    thumbnails = sorted(directory.rglob("*.jpg"))
    if not thumbnails:
        failures.append(f"no JPEG thumbnail under {directory}")
    else:
        lines.append(f"Thumbnails: {len(thumbnails)} JPEG files, first "
                     f"{thumbnails[0].relative_to(directory)}")
    return OutputCheck(lines=lines, failures=failures)
