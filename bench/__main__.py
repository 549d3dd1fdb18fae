"""Command line: ``python -m bench [NAME ...] [--quick] [--json PATH]`` runs the benchmarks.

Without names every benchmark runs, in the order of :data:`BENCHMARKS`. The
table of figures goes to stdout, progress to stderr, and the library's own
warnings to ``<work dir>/bench.log``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis

from bench.common import (
    BENCH_REDIS_URL,
    BenchContext,
    Figure,
    delete_keys,
    use_fake_aws_environment,
)

logger = logging.getLogger("bench")

#: Benchmark modules in run order; each has ``run(ctx) -> list[Figure]``.
BENCHMARKS = ("drain_throughput", "submit_overhead", "latency", "memory", "scale",
              "local_mediaconvert")


def machine() -> dict[str, Any]:
    """Describe the machine and the versions that the figures depend on."""
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    ffmpeg = shutil.which("ffmpeg")
    ffmpeg_version = "missing"
    if ffmpeg:
        first_line = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True,
                                    check=False).stdout.splitlines()[:1]
        ffmpeg_version = first_line[0] if first_line else "unknown"
    server = redis.Redis.from_url(BENCH_REDIS_URL)
    try:
        redis_server = str(server.info("server").get("redis_version"))
    finally:
        server.close()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "botocore": version("botocore"),
        "redis_py": version("redis"),
        "redis_server": redis_server,
        "ffmpeg": ffmpeg_version,
    }


def format_table(figures: Sequence[Figure]) -> str:
    """Return the figures as a fixed-width text table."""
    rows = [("benchmark", "metric", "subject", "baseline", "ratio", "target", "met")]
    for figure in figures:
        rows.append((
            figure.benchmark, figure.metric, f"{figure.subject:.4g} {figure.unit}",
            "-" if figure.baseline is None else f"{figure.baseline:.4g} {figure.unit}",
            "-" if figure.ratio is None else f"{figure.ratio:.3g}x",
            figure.target, {True: "yes", False: "NO", None: "-"}[figure.met],
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true",
                        help="smaller sizes and fewer rounds, for a check in 3 to 4 minutes")
    parser.add_argument("--json", type=Path, default=None,
                        help="write the figures and the machine description to this file")
    parser.add_argument("--memory-events", type=int, default=None,
                        help="events the memory benchmark drains (default: 20000, or 5000 with "
                             "--quick)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="directory for server logs and media (default: a new temporary "
                             "directory, kept for inspection)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}: choose from {', '.join(BENCHMARKS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.names or list(BENCHMARKS)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="mc_tasks_bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    _configure_logging(work_dir)
    use_fake_aws_environment()

    try:
        redis.Redis.from_url(BENCH_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        print(f"error: Redis at {BENCH_REDIS_URL} does not answer ({exc}): start it or set "
              "MC_TASKS_BENCH_REDIS_URL to a Redis on 127.0.0.1.", file=sys.stderr)
        return 2

    ctx = BenchContext(run_id=uuid.uuid4().hex[:10], work_dir=work_dir, quick=args.quick,
                       memory_events=args.memory_events)
    logger.info("Run %s: benchmarks %s, quick=%s, work directory %s", ctx.run_id,
                " ".join(names), args.quick, work_dir)
    started = time.monotonic()
    figures: list[Figure] = []
    durations: dict[str, float] = {}
    try:
        for name in names:
            figures += _run_one(name, ctx, durations)
    finally:
        deleted = delete_keys(ctx.key_prefix)
        logger.info("Deleted %d Redis keys under %s", deleted, ctx.key_prefix)

    print(format_table(figures))
    total_s = time.monotonic() - started
    targets = [figure.met for figure in figures if figure.met is not None]
    print(f"\n{sum(targets)} of {len(targets)} targets met in {total_s:.0f} s; "
          f"logs in {work_dir}")
    if args.json is not None:
        document = {
            "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "quick": args.quick,
            "machine": machine(),
            "duration_s": round(total_s, 1),
            "benchmark_durations_s": durations,
            "figures": [figure.to_dict() for figure in figures],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        logger.info("Wrote %s", args.json)
    return 0


def _run_one(name: str, ctx: BenchContext, durations: dict[str, float]) -> list[Figure]:
    """Run one benchmark; an exception becomes a failed figure so the others still run."""
    module = importlib.import_module(f"bench.{name}")
    logger.info("Running %s", name)
    started = time.monotonic()
    try:
        figures: list[Figure] = module.run(ctx)
    except Exception as exc:
        logger.error("Benchmark %s failed: %s\n%s", name, exc, traceback.format_exc())
        figures = [Figure(benchmark=name, metric="error", unit="", subject=float("nan"),
                          target="runs", met=False, note=f"{type(exc).__name__}: {exc}")]
    durations[name] = round(time.monotonic() - started, 1)
    logger.info("%s took %.0f s", name, durations[name])
    return figures


def _configure_logging(work_dir: Path) -> None:
    """Send warnings of every logger to a file and the benchmarks' progress to stderr.

    mc_tasks loggers stay at WARNING, so their INFO lines cost no formatting
    inside the measured loops.
    """
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    file_handler = logging.FileHandler(work_dir / "bench.log")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                                "%(message)s"))
    root.addHandler(file_handler)
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
