"""The HTTP side of the local MediaConvert: REST-JSON routing, requests and error responses.

Routes come from botocore's model (each operation's method and request URI),
so the server handles every path that botocore's ``mediaconvert`` client sends.
Error responses carry the modelled exception name in the ``x-amzn-ErrorType``
header and ``{"message": ...}`` as the body, which is what botocore's
rest-json parser reads. Requests are not authenticated: bind only to loopback.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mc_tasks.errors import LocalStackError
from mc_tasks.local.mediaconvert.api_errors import ApiError, BadRequest, InternalServerError
from mc_tasks.local.mediaconvert.aws import make_client
from mc_tasks.local.mediaconvert.events import EventPublisher
from mc_tasks.local.mediaconvert.ffmpeg_args import FFMPEG, FFPROBE
from mc_tasks.local.mediaconvert.jobs import JobStore
from mc_tasks.local.mediaconvert.runner import (
    DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S,
    JobRunner,
    WorkerPool,
)
from mc_tasks.local.mediaconvert.wire import (
    Route,
    encode_response,
    match_route,
    parse_request,
    routes,
)

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_CONCURRENCY = 1
#: Largest request body accepted, in bytes; job settings are a few kilobytes.
MAX_REQUEST_BODY_BYTES = 1024 * 1024
#: Seconds a client connection may stay silent before the server closes it.
REQUEST_TIMEOUT_S = 30.0
#: Addresses the server may bind to: it has no authentication.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Operation = Callable[[Mapping[str, Any]], dict[str, Any]]


def check_ffmpeg() -> None:
    """Raise LocalStackError unless ffmpeg and ffprobe are on PATH."""
    for program in (FFMPEG, FFPROBE):
        if shutil.which(program) is None:
            raise LocalStackError(
                f"{program} was not found: install it (Debian: apt-get install ffmpeg).")


class LocalMediaConvert:
    """The local MediaConvert service: job store, workers and the HTTP server."""

    def __init__(self, host: str, port: int, *, account_id: str = DEFAULT_ACCOUNT_ID,
                 region: str = DEFAULT_REGION, work_dir: Path | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 max_status_update_interval_s: float = DEFAULT_MAX_STATUS_UPDATE_INTERVAL_S
                 ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise LocalStackError(f"Host {host!r} is not a loopback address: the local "
                                  "MediaConvert has no authentication, so bind it to "
                                  "127.0.0.1, localhost or ::1.")
        if concurrency < 1:
            raise LocalStackError(f"Concurrency {concurrency} is invalid: give 1 or more.")
        check_ffmpeg()
        self._own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="local-mediaconvert-")) \
            if work_dir is None else work_dir
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.store = JobStore(region, account_id)
        runner = JobRunner(self.store, EventPublisher(region, account_id),
                           make_client("s3", "S3", region), self.work_dir,
                           max_status_update_interval_s)
        self.workers = WorkerPool(self.store, runner, concurrency)
        server_class = _Server6 if ":" in host else _Server
        self.httpd = server_class((host, port), _Handler)
        self.httpd.service = self
        bound_port = self.httpd.server_address[1]
        self.url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
        self.routes = routes()
        self.operations: dict[str, Operation] = {
            "CreateJob": self.store.create_job,
            "GetJob": self.store.get_job,
            "ListJobs": self.store.list_jobs,
            "CancelJob": self.store.cancel_job,
            "GetQueue": self.store.get_queue,
            "ListQueues": self.store.list_queues,
            "UpdateQueue": self.store.update_queue,
            "DescribeEndpoints": lambda params: {"Endpoints": [{"Url": self.url}]},
        }

    def serve_forever(self) -> None:
        """Start the workers and serve requests until :meth:`shutdown` is called."""
        self.workers.start()
        logger.info("Local MediaConvert listening on %s (work dir %s)", self.url, self.work_dir)
        self.httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop serving requests and stop the workers; remove a work dir the server created.

        Call it from a thread other than the one in :meth:`serve_forever`.
        """
        self.httpd.shutdown()
        self.workers.stop()
        self.httpd.server_close()
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        logger.info("Local MediaConvert on %s stopped", self.url)

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, bytes]:
        """Handle one request; return the HTTP status and the JSON body."""
        parts = urlsplit(raw_path)
        found = match_route(self.routes, method, parts.path)
        if found is None:
            raise BadRequest(f"{method} {parts.path} is not an operation of the MediaConvert "
                             "API.")
        route, uri_params = found
        operation = self.operations.get(route.operation.name)
        if operation is None:
            raise BadRequest(f"{route.operation.name} is not supported by the local "
                             f"MediaConvert; it supports {', '.join(sorted(self.operations))}.")
        params = parse_request(route.operation, uri_params, parse_qs(parts.query), body)
        result = operation(params)
        return _status(route), encode_response(route.operation, result)


def _status(route: Route) -> int:
    status: int = route.operation.http.get("responseCode", 200)
    return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    service: LocalMediaConvert


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    #: Seconds a connection may stay silent, so a client that sends less body than
    #: its Content-Length does not hold a thread for ever.
    timeout = REQUEST_TIMEOUT_S
    # Without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK add about
    # 40 ms to each small response.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()
        except BadRequest as exc:
            # The connection cannot be reused once its body was not read in full.
            self.close_connection = True
            self._send_error(exc)
            return
        try:
            status, payload = self.server.service.handle(method, self.path, body)
        except ApiError as exc:
            self._send_error(exc)
            return
        except Exception as exc:
            logger.exception("%s %s failed unexpectedly", method, self.path)
            self._send_error(InternalServerError(f"Internal error: {exc}"))
            return
        self._send(status, payload, {})

    def _read_body(self) -> bytes:
        """Read the request body; raise BadRequest for a body this server does not accept."""
        if self.headers.get("Transfer-Encoding"):
            raise BadRequest("Transfer-Encoding is not supported: send the body with a "
                             "Content-Length header.")
        raw_length = self.headers.get("Content-Length") or "0"
        if not raw_length.isdigit():
            raise BadRequest(f"Invalid Content-Length {raw_length!r}: expected a number of bytes.")
        length = int(raw_length)
        if length > MAX_REQUEST_BODY_BYTES:
            raise BadRequest(f"The request body of {length} bytes is larger than "
                             f"{MAX_REQUEST_BODY_BYTES} bytes.")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise BadRequest(f"The request body ended after {len(body)} of {length} bytes.")
        return body

    def _send_error(self, error: ApiError) -> None:
        logger.info("%s %s rejected: %s: %s", self.command, self.path, error.code, error.message)
        payload = json.dumps({"message": error.message}).encode()
        self._send(error.http_status, payload, {"x-amzn-ErrorType": error.code})

    def _send(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)
