"""botocore's model of the MediaConvert API, loaded once per process."""

from __future__ import annotations

import functools

import botocore.session
from botocore.model import ServiceModel

SERVICE_NAME = "mediaconvert"


@functools.cache
def service_model() -> ServiceModel:
    """Return botocore's service model of MediaConvert (API version 2017-08-29)."""
    return botocore.session.get_session().get_service_model(SERVICE_NAME)
