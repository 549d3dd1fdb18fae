"""The work of one job: fetch the input from S3, run ffmpeg, probe and upload the outputs.

Failures raise :class:`JobFailure` with a MediaConvert error code and message,
which the job runner turns into the job's ERROR state and event.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mc_tasks.local.mediaconvert.ffmpeg_args import FFPROBE, build_ffmpeg_argv, group_dirs
from mc_tasks.local.mediaconvert.naming import S3Uri
from mc_tasks.local.mediaconvert.plan import GroupPlan, JobPlan, OutputPlan

logger = logging.getLogger(__name__)

#: MediaConvert's "File access error": the service cannot open an input file,
#: for example because the S3 path is wrong. Source: the MediaConvert User
#: Guide, "Error codes" (docs.aws.amazon.com/mediaconvert/latest/ug/mediaconvert_error_codes.html).
INPUT_ACCESS_ERROR_CODE = 1010
#: Code for failures the local server does not classify, such as ffmpeg or
#: upload errors. NOTE: 1999 is in the same list, but its meaning there was
#: not checked.
UNCLASSIFIED_ERROR_CODE = 1999
#: Threads that upload outputs and run ffprobe on them at the same time.
OUTPUT_THREADS = 4
#: Seconds ffprobe may take for one file.
PROBE_TIMEOUT_S = 60.0
#: Characters of ffmpeg's error output kept in an error message.
ERROR_OUTPUT_CHARS = 600


class JobFailure(Exception):
    """A job failed; ``error_code`` and ``message`` go into its ERROR state."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


class JobCanceled(Exception):
    """The job was canceled while it ran."""


def download_input(s3: Any, uri: S3Uri, work_dir: Path) -> Path:
    """Download the input object into ``work_dir``; raise JobFailure if it cannot be read."""
    path = work_dir / "input" / (uri.key.rsplit("/", 1)[-1] or "input")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3.download_file(uri.bucket, uri.key, str(path))
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "unknown")
        raise JobFailure(INPUT_ACCESS_ERROR_CODE,
                         f"Unable to open input file [{uri}]: [S3 error {code}: the object "
                         "was not found or cannot be read]") from exc
    except BotoCoreError as exc:
        raise JobFailure(INPUT_ACCESS_ERROR_CODE,
                         f"Unable to open input file [{uri}]: [{exc}]") from exc
    return path


def probe(path: Path) -> dict[str, Any]:
    """Return ffprobe's JSON description (format and streams) of a media file."""
    argv = [FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            str(path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S,
                            check=False)
    if result.returncode != 0:
        raise ValueError(result.stderr.strip()[-ERROR_OUTPUT_CHARS:] or "ffprobe failed")
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def probe_input(path: Path, uri: S3Uri, plan: JobPlan) -> dict[str, Any]:
    """Probe the input; raise JobFailure if it is not media or lacks a track the outputs need."""
    try:
        info = probe(path)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        raise JobFailure(INPUT_ACCESS_ERROR_CODE,
                         f"Unable to open input file [{uri}]: [Failed probe/open: {exc}]") from exc
    kinds = {stream.get("codec_type") for stream in info.get("streams", [])}
    outputs = [output for group in plan.groups for output in group.outputs]
    for kind, needed in (("video", any(output.video for output in outputs)),
                         ("audio", any(output.audio for output in outputs))):
        if needed and kind not in kinds:
            raise JobFailure(UNCLASSIFIED_ERROR_CODE,
                             f"Input file [{uri}] has no {kind} track, but an output needs one.")
    return info


def run_ffmpeg(plan: JobPlan, input_path: Path, work_dir: Path,
               on_progress: Callable[[float], None],
               on_start: Callable[[subprocess.Popen[str]], None]) -> Path:
    """Run the job's ffmpeg command; return the output directory.

    ``on_progress`` receives the seconds of media written so far, about twice a
    second; ``on_start`` receives the process so that a cancel can stop it.
    Raise JobFailure when ffmpeg fails and JobCanceled when it was stopped by a signal.
    """
    output_dir = work_dir / "output"
    for directory in group_dirs(plan, output_dir):
        directory.mkdir(parents=True, exist_ok=True)
    argv = build_ffmpeg_argv(plan, input_path, output_dir)
    error_log = work_dir / "ffmpeg.log"
    with open(error_log, "w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr,
                                   stdin=subprocess.DEVNULL, text=True)
        on_start(process)
        assert process.stdout is not None
        for line in process.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.lstrip("-").isdigit():
                on_progress(max(int(value), 0) / 1_000_000)
        return_code = process.wait()
    if return_code < 0:
        raise JobCanceled()
    if return_code != 0:
        output = error_log.read_text(errors="replace").strip()[-ERROR_OUTPUT_CHARS:]
        raise JobFailure(UNCLASSIFIED_ERROR_CODE,
                         f"Transcoding failed: ffmpeg exited with code {return_code}: {output}")
    return output_dir


def upload_outputs(s3: Any, plan: JobPlan, output_dir: Path) -> int:
    """Upload every file of every group to its destination prefix; return the file count.

    Files are uploaded by a few threads at once, because each upload mostly
    waits on the S3 server.
    """
    files = [(group, path)
             for group, directory in zip(plan.groups, group_dirs(plan, output_dir), strict=True)
             for path in sorted(directory.iterdir())]
    with ThreadPoolExecutor(max_workers=OUTPUT_THREADS) as pool:
        list(pool.map(lambda item: _upload(s3, *item), files))
    return len(files)


def _upload(s3: Any, group: GroupPlan, path: Path) -> None:
    key = f"{group.prefix.key}{path.name}"
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    try:
        s3.upload_file(str(path), group.prefix.bucket, key,
                       ExtraArgs={"ContentType": content_type})
    except (ClientError, BotoCoreError) as exc:
        raise JobFailure(UNCLASSIFIED_ERROR_CODE,
                         f"Unable to write output file [s3://{group.prefix.bucket}/"
                         f"{key}]: [{exc}]") from exc


def output_group_details(plan: JobPlan, output_dir: Path, input_duration_s: float
                         ) -> list[dict[str, Any]]:
    """Describe the written outputs as the COMPLETE event's ``outputGroupDetails``."""
    groups = list(zip(plan.groups, group_dirs(plan, output_dir), strict=True))
    # ffprobe runs once per output; running them at once saves most of their wall time.
    with ThreadPoolExecutor(max_workers=OUTPUT_THREADS) as pool:
        futures = [[pool.submit(_output_detail, group, output, directory, input_duration_s)
                    for output in group.outputs] for group, directory in groups]
        outputs_by_group = [[future.result() for future in group_futures]
                            for group_futures in futures]

    details = []
    for (group, _), outputs in zip(groups, outputs_by_group, strict=True):
        detail: dict[str, Any] = {"outputDetails": outputs, "type": group.kind}
        if group.kind == "HLS_GROUP":
            detail["playlistFilePaths"] = [_uri(group, f"{group.base}.m3u8")]
        details.append(detail)
    return details


def _output_detail(group: GroupPlan, output: OutputPlan, directory: Path,
                   input_duration_s: float) -> dict[str, Any]:
    stem = output.file_stem(group.base)
    if output.container == "RAW":
        images = sorted(directory.glob(f"{stem}.*.{output.extension}"))
        if not images:
            raise JobFailure(UNCLASSIFIED_ERROR_CODE, f"Frame capture {stem} wrote no image.")
        local, paths = images[-1], [_uri(group, images[-1].name)]
    else:
        local = directory / (f"{stem}.m3u8" if group.kind == "HLS_GROUP"
                             else f"{stem}.{output.extension}")
        paths = [_uri(group, local.name)]
    try:
        info = probe(local)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        raise JobFailure(UNCLASSIFIED_ERROR_CODE, f"Output {local.name} is unreadable: {exc}"
                         ) from exc

    duration_s = input_duration_s
    if output.container != "RAW":
        duration_s = float(info.get("format", {}).get("duration") or input_duration_s)
    detail: dict[str, Any] = {"outputFilePaths": paths, "durationInMs": round(duration_s * 1000)}
    video = next((s for s in info.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is not None:
        video_details: dict[str, Any] = {"widthInPx": video["width"],
                                         "heightInPx": video["height"]}
        bitrate = video.get("bit_rate") or info.get("format", {}).get("bit_rate")
        if bitrate and output.container != "RAW":
            video_details["averageBitrate"] = int(bitrate)
        detail["videoDetails"] = video_details
    return detail


def _uri(group: GroupPlan, name: str) -> str:
    return f"s3://{group.prefix.bucket}/{group.prefix.key}{name}"
