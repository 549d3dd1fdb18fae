"""The ffmpeg command line for a job: every ffmpeg argument the local server uses is here.

One ffmpeg process reads the input once and writes every output of the job.
Each FILE_GROUP output is an ffmpeg output file. Each HLS group is one output
of ffmpeg's ``hls`` muxer, whose ``var_stream_map`` makes one rendition per
MediaConvert output and writes the main playlist. Files are written under
``output_dir/g<index>/`` with their final MediaConvert names, ready to upload
under the group's destination prefix.

Mappings that approximate MediaConvert rather than match it:

- QVBR runs libx264 in CRF mode capped at MaxBitrate; the quality level
  1-10 maps linearly to CRF 36-16 (level 7 is CRF 23, libx264's default).
- GOP sizes in seconds and HLS segment lengths are enforced with forced key
  frames at those times.
- HlsGroupSettings.MinSegmentLength has no ffmpeg counterpart and is not
  applied, so the last segment can be shorter than it.
- ScalingBehavior DEFAULT letterboxes into Width x Height, as MediaConvert's
  default does; STRETCH_TO_OUTPUT stretches.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mc_tasks.local.mediaconvert.plan import (
    AudioPlan,
    GroupPlan,
    JobPlan,
    OutputPlan,
    VideoPlan,
    plan_job,
)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"
#: Digits of the segment number in HLS segment names (``_00001.ts``), as MediaConvert writes them.
HLS_SEGMENT_NUMBER_DIGITS = 5
#: Digits of the capture number in frame capture names (``.0000000.jpg``).
FRAME_CAPTURE_NUMBER_DIGITS = 7
_H264_PROFILES = {"BASELINE": "baseline", "MAIN": "main", "HIGH": "high"}


def ffmpeg_argv(settings: Mapping[str, Any], input_path: Path, output_dir: Path) -> list[str]:
    """Return the exact ffmpeg argv the local server runs for a job's ``Settings``.

    ``settings`` uses API member names, as in boto3's ``create_job(Settings=...)``.
    The directories of :func:`group_dirs` must exist before ffmpeg runs.
    Raise :class:`~mc_tasks.local.mediaconvert.api_errors.BadRequest` for
    settings outside the supported subset.
    """
    return build_ffmpeg_argv(plan_job(settings), input_path, output_dir)


def group_dirs(plan: JobPlan, output_dir: Path) -> list[Path]:
    """Return the local directory of each output group, in group order."""
    return [output_dir / f"g{index}" for index in range(len(plan.groups))]


def build_ffmpeg_argv(plan: JobPlan, input_path: Path, output_dir: Path) -> list[str]:
    """Return the ffmpeg argv for a checked plan; see :func:`ffmpeg_argv`."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
            "-progress", "pipe:1", "-nostats", "-i", str(input_path)]
    for group, directory in zip(plan.groups, group_dirs(plan, output_dir), strict=True):
        if group.kind == "HLS_GROUP":
            argv += _hls_group_args(group, directory)
            continue
        for output in group.outputs:
            argv += _file_output_args(output, directory / f"{output.file_stem(group.base)}")
    return argv


def _file_output_args(output: OutputPlan, stem: Path) -> list[str]:
    if output.container == "RAW":
        assert output.video is not None and output.video.frame_capture is not None
        return _frame_capture_args(output.video, stem, output.extension)
    args: list[str] = []
    if output.video is not None:
        args += ["-map", "0:v:0", *_h264_args(output.video, ":v", hls_segment_s=None)]
    if output.audio is not None:
        args += ["-map", "0:a:0", *_aac_args(output.audio, ":a")]
    return [*args, "-movflags", "+faststart", "-f", "mp4", f"{stem}.{output.extension}"]


def _frame_capture_args(video: VideoPlan, stem: Path, extension: str) -> list[str]:
    capture = video.frame_capture
    assert capture is not None
    numerator, denominator = capture.rate
    # round=up emits the capture at 0 s at once, so a clip shorter than half the
    # capture interval still gets its first image, as MediaConvert's does.
    filters = [f"fps={numerator}/{denominator}:round=up", *_scale_filters(video)]
    # Quality 100 is ffmpeg's best JPEG quantizer (2) and quality 1 its worst (31).
    qscale = round(2 + (100 - capture.quality) * 29 / 99)
    args = ["-map", "0:v:0", "-filter:v", ",".join(filters), "-c:v", "mjpeg",
            "-pix_fmt", "yuvj420p", "-q:v", str(qscale)]
    if capture.max_captures:
        args += ["-frames:v", str(capture.max_captures)]
    pattern = f"{_escape_pattern(str(stem))}.%0{FRAME_CAPTURE_NUMBER_DIGITS}d.{extension}"
    return [*args, "-start_number", "0", "-f", "image2", pattern]


def _hls_group_args(group: GroupPlan, directory: Path) -> list[str]:
    args: list[str] = []
    stream_map: list[str] = []
    video_index = audio_index = 0
    for output in group.outputs:
        entry: list[str] = []
        if output.video is not None:
            args += ["-map", "0:v:0",
                     *_h264_args(output.video, f":v:{video_index}", group.segment_length_s)]
            entry.append(f"v:{video_index}")
            video_index += 1
        if output.audio is not None:
            args += ["-map", "0:a:0", *_aac_args(output.audio, f":a:{audio_index}")]
            entry.append(f"a:{audio_index}")
            audio_index += 1
        entry.append(f"name:{output.name_modifier}")
        stream_map.append(",".join(entry))

    # ffmpeg 5.1's HLS muxer substitutes %v and %d but keeps any other "%" as it is,
    # so the base name goes in unescaped, unlike in image2 patterns.
    segment_pattern = f"{group.base}%v_%0{HLS_SEGMENT_NUMBER_DIGITS}d.ts"
    return [
        *args,
        "-f", "hls",
        "-hls_time", str(group.segment_length_s),
        "-hls_playlist_type", "vod",
        "-hls_list_size", "0",
        "-hls_segment_type", "mpegts",
        "-hls_flags", "independent_segments",
        "-start_number", "1",
        "-hls_segment_filename", str(directory / segment_pattern),
        "-master_pl_name", f"{group.base}.m3u8",
        "-var_stream_map", " ".join(stream_map),
        str(directory / f"{group.base}%v.m3u8"),
    ]


def _escape_pattern(name: str) -> str:
    """Escape ``%`` in a name used inside an ffmpeg image2 output pattern."""
    return name.replace("%", "%%")


def _scale_filters(video: VideoPlan) -> list[str]:
    width, height = video.width, video.height
    if width is None and height is None:
        return []
    if width is None or height is None:
        return [f"scale={width or -2}:{height or -2}", "setsar=1"]
    if video.stretch:
        return [f"scale={width}:{height}", "setsar=1"]
    return [f"scale={width}:{height}:force_original_aspect_ratio=decrease",
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2", "setsar=1"]


def _h264_args(video: VideoPlan, spec: str, hls_segment_s: int | None) -> list[str]:
    h264 = video.h264
    assert h264 is not None
    args = [f"-c{spec}", "libx264", f"-pix_fmt{spec}", "yuv420p"]
    filters = _scale_filters(video)
    if filters:
        args += [f"-filter{spec}", ",".join(filters)]
    args += _rate_control_args(video, spec)

    key_frame_interval_s: float | None = hls_segment_s
    if h264.gop_size and h264.gop_units == "FRAMES":
        args += [f"-g{spec}", str(round(h264.gop_size))]
    elif h264.gop_size and h264.gop_units == "SECONDS":
        key_frame_interval_s = min(h264.gop_size, hls_segment_s or h264.gop_size)
    if key_frame_interval_s:
        args += [f"-force_key_frames{spec}", f"expr:gte(t,n_forced*{key_frame_interval_s:g})"]
    if h264.profile:
        args += [f"-profile{spec}", _H264_PROFILES[h264.profile]]
    if h264.level != "AUTO":
        args += [f"-level{spec}", h264.level.removeprefix("LEVEL_").replace("_", ".")]
    if not h264.scene_change_detect:
        args += [f"-sc_threshold{spec}", "0"]
    if h264.framerate:
        args += [f"-r{spec}", f"{h264.framerate[0]}/{h264.framerate[1]}"]
    if h264.b_frames is not None:
        args += [f"-bf{spec}", str(h264.b_frames)]
    if h264.reference_frames is not None:
        args += [f"-refs{spec}", str(h264.reference_frames)]
    if h264.entropy_encoding:
        args += [f"-coder{spec}", h264.entropy_encoding.lower()]
    return args


def _rate_control_args(video: VideoPlan, spec: str) -> list[str]:
    h264 = video.h264
    assert h264 is not None
    if h264.rate_control == "QVBR":
        assert h264.max_bitrate_bps is not None
        crf = round(38.7 - 2.24 * h264.qvbr_quality_level)
        buffer_bits = h264.hrd_buffer_size_bits or 2 * h264.max_bitrate_bps
        return [f"-crf{spec}", str(crf), f"-maxrate{spec}", str(h264.max_bitrate_bps),
                f"-bufsize{spec}", str(buffer_bits)]
    assert h264.bitrate_bps is not None
    if h264.rate_control == "CBR":
        buffer_bits = h264.hrd_buffer_size_bits or h264.bitrate_bps
        return [f"-b{spec}", str(h264.bitrate_bps), f"-minrate{spec}", str(h264.bitrate_bps),
                f"-maxrate{spec}", str(h264.bitrate_bps), f"-bufsize{spec}", str(buffer_bits)]
    args = [f"-b{spec}", str(h264.bitrate_bps)]
    if h264.max_bitrate_bps:
        buffer_bits = h264.hrd_buffer_size_bits or 2 * h264.max_bitrate_bps
        args += [f"-maxrate{spec}", str(h264.max_bitrate_bps), f"-bufsize{spec}", str(buffer_bits)]
    return args


def _aac_args(audio: AudioPlan, spec: str) -> list[str]:
    args = [f"-c{spec}", "aac", f"-ac{spec}", str(audio.channels)]
    if audio.bitrate_bps:
        args += [f"-b{spec}", str(audio.bitrate_bps)]
    if audio.sample_rate_hz:
        args += [f"-ar{spec}", str(audio.sample_rate_hz)]
    return args
