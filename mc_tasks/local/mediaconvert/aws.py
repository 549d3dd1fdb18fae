"""boto3 clients for the services the local MediaConvert uses: S3 and EventBridge.

Their endpoints come from boto3's own variables, ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL_EVENTS`` or else ``AWS_ENDPOINT_URL``. One of them must be
set: the local MediaConvert is meant to work against a local stack such as
moto's server and never falls back to AWS's public endpoints.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config

from mc_tasks.errors import LocalStackError

#: Attempts of botocore's "standard" retry mode for each S3 or EventBridge call.
AWS_MAX_ATTEMPTS = 3


def endpoint_url(service_env_name: str, environ: Mapping[str, str] | None = None) -> str:
    """Return the endpoint for a service, such as ``S3`` or ``EVENTS``, from the environment."""
    environ = os.environ if environ is None else environ
    url = environ.get(f"AWS_ENDPOINT_URL_{service_env_name}") or environ.get("AWS_ENDPOINT_URL")
    if not url:
        raise LocalStackError(
            f"No endpoint for {service_env_name}: set AWS_ENDPOINT_URL (or "
            f"AWS_ENDPOINT_URL_{service_env_name}) to the local stack, for example moto's "
            "server. The local MediaConvert never uses AWS's public endpoints."
        )
    return url


def make_client(service_name: str, service_env_name: str, region: str) -> Any:
    """Create a boto3 client for ``service_name`` aimed at its endpoint from the environment."""
    return boto3.client(
        service_name,  # type: ignore[call-overload]
        region_name=region,
        endpoint_url=endpoint_url(service_env_name),
        config=Config(retries={"mode": "standard", "max_attempts": AWS_MAX_ATTEMPTS}),
    )
