"""The local MediaConvert's API through botocore: operations, errors, queue and idempotency."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mc_tasks.local.stack import free_port
from tests.local.conftest import INPUT_URI, ROLE_ARN, LocalStack, job_settings


@pytest.fixture
def paused_queue(stack: LocalStack) -> Iterator[Any]:
    """Pause the Default queue so jobs stay SUBMITTED; resume it afterwards."""
    client = stack.mediaconvert
    client.update_queue(Name="Default", Status="PAUSED")
    yield client
    for job in client.list_jobs(Status="SUBMITTED")["Jobs"]:
        client.cancel_job(Id=job["Id"])
    client.update_queue(Name="Default", Status="ACTIVE")


def create_job(client: Any, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = client.create_job(
        Role=ROLE_ARN, Settings=job_settings(INPUT_URI, "s3://media/api/"), **extra)["Job"]
    return job


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> dict[str, Any]:
    return dict(excinfo.value.response["Error"])


def test_get_queue_describes_default_queue(stack: LocalStack) -> None:
    queue = stack.mediaconvert.get_queue(Name="Default")["Queue"]

    assert queue["Name"] == "Default"
    assert queue["Arn"] == "arn:aws:mediaconvert:us-east-1:123456789012:queues/Default"
    assert queue["Type"] == "ON_DEMAND"
    assert queue["Status"] == "ACTIVE"


def test_list_queues_returns_default_queue(stack: LocalStack) -> None:
    queues = stack.mediaconvert.list_queues()["Queues"]

    assert [queue["Name"] for queue in queues] == ["Default"]


def test_paused_queue_keeps_job_submitted(paused_queue: Any) -> None:
    job = create_job(paused_queue, UserMetadata={"ref": "42"})

    fetched = paused_queue.get_job(Id=job["Id"])["Job"]
    queue = paused_queue.get_queue(Name="Default")["Queue"]
    assert fetched["Status"] == "SUBMITTED"
    assert fetched["UserMetadata"] == {"ref": "42"}
    assert fetched["Settings"]["Inputs"][0]["FileInput"] == INPUT_URI
    assert queue["Status"] == "PAUSED"
    assert queue["SubmittedJobsCount"] >= 1


def test_created_job_has_mediaconvert_id_and_arn(paused_queue: Any) -> None:
    job = create_job(paused_queue)

    assert job["Status"] == "SUBMITTED"
    assert job["Arn"] == f"arn:aws:mediaconvert:us-east-1:123456789012:jobs/{job['Id']}"
    assert job["Id"].split("-")[0].isdigit()
    assert job["Queue"].endswith(":queues/Default")


def test_cancel_submitted_job_cancels_it(paused_queue: Any) -> None:
    job = create_job(paused_queue)

    paused_queue.cancel_job(Id=job["Id"])

    assert paused_queue.get_job(Id=job["Id"])["Job"]["Status"] == "CANCELED"


def test_cancel_canceled_job_conflicts(paused_queue: Any) -> None:
    job = create_job(paused_queue)
    paused_queue.cancel_job(Id=job["Id"])

    with pytest.raises(ClientError) as excinfo:
        paused_queue.cancel_job(Id=job["Id"])

    assert error_of(excinfo)["Code"] == "ConflictException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_same_client_request_token_returns_same_job(paused_queue: Any) -> None:
    token = str(uuid.uuid4())

    first = create_job(paused_queue, ClientRequestToken=token)
    second = create_job(paused_queue, ClientRequestToken=token)

    submitted = paused_queue.list_jobs(Status="SUBMITTED")["Jobs"]
    assert second["Id"] == first["Id"]
    assert [job["ClientRequestToken"] for job in submitted].count(token) == 1


def test_list_jobs_filters_orders_and_pages(paused_queue: Any) -> None:
    older = create_job(paused_queue)
    newer = create_job(paused_queue)

    first_page = paused_queue.list_jobs(Status="SUBMITTED", MaxResults=1)
    ascending = paused_queue.list_jobs(Status="SUBMITTED", Order="ASCENDING")["Jobs"]
    ids = [job["Id"] for job in ascending]

    assert [job["Id"] for job in first_page["Jobs"]] == [newer["Id"]]
    assert "NextToken" in first_page
    assert ids.index(older["Id"]) < ids.index(newer["Id"])


def test_job_accepts_queue_arn(paused_queue: Any) -> None:
    arn = "arn:aws:mediaconvert:us-east-1:123456789012:queues/Default"

    job = create_job(paused_queue, Queue=arn)

    assert job["Queue"] == arn


def test_unknown_queue_is_not_found(stack: LocalStack) -> None:
    with pytest.raises(ClientError) as excinfo:
        create_job(stack.mediaconvert, Queue="Missing")

    assert error_of(excinfo)["Code"] == "NotFoundException"


def test_unknown_job_is_not_found(stack: LocalStack) -> None:
    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.get_job(Id="1700000000000-nosuch")

    assert error_of(excinfo)["Code"] == "NotFoundException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_role_not_arn_is_bad_request(stack: LocalStack) -> None:
    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.create_job(Role="MediaConvertRole",
                                      Settings=job_settings(INPUT_URI, "s3://media/api/"))

    assert error_of(excinfo)["Code"] == "BadRequestException"
    assert "Role='MediaConvertRole'" in error_of(excinfo)["Message"]


def test_unsupported_codec_is_bad_request_naming_path(stack: LocalStack) -> None:
    settings = job_settings(INPUT_URI, "s3://media/api/")
    settings["OutputGroups"][1]["Outputs"][2]["VideoDescription"]["CodecSettings"] = {
        "Codec": "AV1", "Av1Settings": {"RateControlMode": "QVBR"}}

    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.create_job(Role=ROLE_ARN, Settings=settings)

    assert error_of(excinfo)["Code"] == "BadRequestException"
    assert error_of(excinfo)["Message"].startswith(
        "Settings.OutputGroups[1].Outputs[2].VideoDescription.CodecSettings.Codec=AV1 "
        "is not supported by the local MediaConvert")


def test_job_template_is_bad_request(stack: LocalStack) -> None:
    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.create_job(Role=ROLE_ARN, JobTemplate="System-Ott_Hls",
                                      Settings=job_settings(INPUT_URI, "s3://media/api/"))

    assert error_of(excinfo)["Code"] == "BadRequestException"
    assert "JobTemplate" in error_of(excinfo)["Message"]


def test_unimplemented_operation_is_bad_request(stack: LocalStack) -> None:
    with pytest.raises(ClientError) as excinfo:
        stack.mediaconvert.list_presets()

    assert error_of(excinfo)["Code"] == "BadRequestException"
    assert "ListPresets" in error_of(excinfo)["Message"]


def test_misspelled_wire_member_is_rejected(stack: LocalStack) -> None:
    body = json.dumps({"role": ROLE_ARN, "settings": {"inputz": []}}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback test server
        f"{stack.mediaconvert_url}/2017-08-29/jobs", data=body, method="POST")

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback test server

    assert excinfo.value.code == 400
    assert excinfo.value.headers["x-amzn-ErrorType"] == "BadRequestException"
    assert "Settings.inputz" in json.loads(excinfo.value.read())["message"]


def test_describe_endpoints_returns_server_url(stack: LocalStack) -> None:
    endpoints = stack.mediaconvert.describe_endpoints()["Endpoints"]

    assert endpoints == [{"Url": stack.mediaconvert_url}]


def run_server_command(*args: str, env: dict[str, str] | None = None
                       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mc_tasks.local.mediaconvert", *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_server_rejects_non_loopback_host() -> None:
    result = run_server_command("--host", "0.0.0.0", "--port", str(free_port()))  # noqa: S104

    assert result.returncode == 2
    assert "'0.0.0.0' is not a loopback address" in result.stderr


def test_server_without_ffmpeg_fails_at_startup(tmp_path: Any) -> None:
    env = {"PATH": str(tmp_path), "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}

    result = run_server_command("--port", str(free_port()), env=env)

    assert result.returncode == 2
    assert "ffmpeg was not found: install it (Debian: apt-get install ffmpeg)" in result.stderr


def test_server_without_aws_endpoint_fails_at_startup() -> None:
    env = {"PATH": os.environ["PATH"], "AWS_EC2_METADATA_DISABLED": "true"}

    result = run_server_command("--port", str(free_port()), env=env)

    assert result.returncode == 2
    assert "set AWS_ENDPOINT_URL" in result.stderr


def raw_request(url: str, request: bytes) -> bytes:
    """Send ``request`` as raw bytes to the server at ``url``; return the whole response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(("headers", "expected"), [
    (b"Content-Length: abc\r\n", b"Invalid Content-Length"),
    (b"Content-Length: -5\r\n", b"Invalid Content-Length"),
    (b"Content-Length: 99999999999\r\n", b"larger than"),
    (b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding"),
    (b"Content-Length: 100\r\n", b"ended after"),
])
def test_malformed_body_is_bad_request(stack: LocalStack, headers: bytes,
                                       expected: bytes) -> None:
    request = (b"POST /2017-08-29/jobs HTTP/1.1\r\nHost: localhost\r\n" + headers +
               b"Connection: close\r\n\r\n{}")

    response = raw_request(stack.mediaconvert_url, request)

    assert response.startswith(b"HTTP/1.1 400")
    assert b"BadRequestException" in response
    assert expected in response


def test_deeply_nested_body_is_bad_request(stack: LocalStack) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    request = (b"POST /2017-08-29/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
               str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)

    response = raw_request(stack.mediaconvert_url, request)

    assert response.startswith(b"HTTP/1.1 400")
    assert b"not valid JSON" in response
