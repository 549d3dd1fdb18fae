"""Start and stop the processes of the embedded local stack.

Every server binds to 127.0.0.1 on a free port. Each process is started by this
module and stopped by its PID (SIGTERM, then SIGKILL after a grace period);
nothing else is ever signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from mc_tasks.errors import LocalStackError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: Seconds to wait for a started server to accept connections.
STARTUP_TIMEOUT_S = 30.0
#: Seconds between SIGTERM and SIGKILL when stopping a process.
STOP_GRACE_S = 10.0
#: Environment that keeps boto3 away from real AWS: fake credentials, no instance metadata.
FAKE_AWS_ENVIRONMENT: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL the child when the process that started it dies.

    Without it, a demo or test run killed with SIGKILL would leave its servers
    running. Runs in the child between fork and exec; a no-op off Linux. Used
    only for processes started from the main thread, because Linux sends the
    signal when the thread that started the child ends.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free when checked."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ManagedProcess:
    """A child process started by the local stack, stopped only by its own PID."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | Path | None = None, log_path: Path | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(  # noqa: S603
                self.argv, env=dict(env) if env is not None else None, cwd=cwd,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Linux sends the death signal when the creating thread ends, not
                # the process, so only children of the main thread can use it.
                preexec_fn=(_die_with_parent
                            if threading.current_thread() is threading.main_thread()
                            else None),
            )
        except FileNotFoundError as exc:
            raise LocalStackError(f"Cannot start {name}: {argv[0]!r} was not found.") from exc
        finally:
            if log_path:
                log.close()  # type: ignore[union-attr]
        logger.info("Started %s with PID %d", name, self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines of the process log, or an empty string."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_for_port(self, port: int, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until the process accepts connections on ``port``; raise LocalStackError if not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                raise LocalStackError(
                    f"{self.name} exited with code {self.popen.returncode} during startup. "
                    f"Last log lines:\n{self.log_tail()}"
                )
            if port_open(port):
                return
            time.sleep(0.1)
        self.stop()
        raise LocalStackError(f"{self.name} did not listen on {LOOPBACK}:{port} "
                              f"within {timeout_s:g} s. Last log lines:\n{self.log_tail()}")

    def wait_for_http(self, url: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until a GET of ``url`` succeeds; else stop the process and raise LocalStackError."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL built here
                    return
            except (urllib.error.URLError, OSError):
                if not self.running():
                    break
                time.sleep(0.1)
        self.stop()
        raise LocalStackError(f"{self.name} did not respond at {url}. Last log lines:\n"
                              f"{self.log_tail()}")

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop the process: SIGTERM to it, then SIGKILL to its group after ``grace_s``.

        SIGTERM goes to the process alone so that it shuts down its own children
        (a Celery worker finishes its running tasks). Whatever is left of its
        process group afterwards is killed.
        """
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s (PID %d) ignored SIGTERM for %g s; sending SIGKILL",
                               self.name, self.pid, grace_s)
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=grace_s)
            logger.info("Stopped %s (PID %d)", self.name, self.pid)
        self._signal(signal.SIGKILL)

    def kill(self) -> None:
        """Send SIGKILL to the process group at once."""
        if self.running():
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout=STOP_GRACE_S)

    def _signal(self, signum: int) -> None:
        # The process leads its own session (start_new_session=True), so its
        # process group id equals its PID and contains only its own children.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)


def start_moto_server(log_dir: Path, env: Mapping[str, str] | None = None
                      ) -> tuple[ManagedProcess, str]:
    """Start moto's server on a free loopback port; return the process and its URL.

    The server runs through :mod:`mc_tasks.local.moto_server`, which makes moto's
    SQS deletions safe against concurrent sends.
    """
    port = free_port()
    process = ManagedProcess(
        "moto server",
        [sys.executable, "-m", "mc_tasks.local.moto_server", "-H", LOOPBACK, "-p", str(port)],
        env=env, log_path=log_dir / "moto.log",
    )
    process.wait_for_port(port)
    url = f"http://{LOOPBACK}:{port}"
    process.wait_for_http(f"{url}/moto-api/")
    return process, url


def start_redis_server(log_dir: Path) -> tuple[ManagedProcess, str]:
    """Start a throwaway redis-server on a free loopback port; return it and its URL."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise LocalStackError(
            "redis-server was not found and no Redis responded at MC_TASKS_REDIS_URL: install "
            "Redis (Debian: apt-get install redis-server) or set MC_TASKS_REDIS_URL to a "
            "reachable server."
        )
    port = free_port()
    process = ManagedProcess(
        "redis-server",
        [executable, "--bind", LOOPBACK, "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(log_dir)],
        log_path=log_dir / "redis.log",
    )
    process.wait_for_port(port)
    return process, f"redis://{LOOPBACK}:{port}/0"
