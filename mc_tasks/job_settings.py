"""Job settings given by the caller: loading console exports and fitting them to a submission.

:func:`load_job_settings` accepts a ``Settings`` dict, a JSON string or a path
to a JSON file, in any of the shapes the MediaConvert console and CLI export:

* a whole job, as "Export JSON" on a job page or ``aws mediaconvert get-job``
  writes it (``{"Job": {...}}`` or the job object with a top-level ``Settings``);
* a job template or a request body with a top-level ``Settings``;
* the bare ``Settings`` object (with ``Inputs`` and ``OutputGroups``).

Only ``Settings`` is kept: the other fields of an export (the read-only ones
such as ``Arn``, ``Id``, ``CreatedAt``, ``Status`` and ``Timing``, and request
fields such as ``Role`` and ``Queue``) are dropped with a debug log, because
:func:`mc_tasks.submit.submit_transcode` sets the request fields itself.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mc_tasks.errors import InvalidJobError
from mc_tasks.validation import parse_s3_uri

logger = logging.getLogger(__name__)

#: The member of ``OutputGroupSettings`` that contains ``Destination``, by group type.
GROUP_SETTINGS_BY_TYPE: Mapping[str, str] = {
    "FILE_GROUP_SETTINGS": "FileGroupSettings",
    "HLS_GROUP_SETTINGS": "HlsGroupSettings",
    "DASH_ISO_GROUP_SETTINGS": "DashIsoGroupSettings",
    "CMAF_GROUP_SETTINGS": "CmafGroupSettings",
    "MS_SMOOTH_GROUP_SETTINGS": "MsSmoothGroupSettings",
}
_SETTINGS_MEMBERS = ("Inputs", "OutputGroups")


def load_job_settings(job_settings: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """Return a deep copy of the job ``Settings`` in ``job_settings``.

    A ``str`` starting with ``{`` or ``[`` is parsed as JSON, and any other ``str`` or a
    ``Path`` is read as a JSON file. Raise InvalidJobError when the file is
    missing, the JSON is invalid or no ``Settings`` object can be found.
    """
    document = _read_document(job_settings)
    if isinstance(document.get("Job"), Mapping):
        document = document["Job"]

    if "Settings" in document:
        dropped = sorted(key for key in document if key != "Settings")
        if dropped:
            logger.debug("Ignoring job fields other than Settings in the given job settings: %s",
                         ", ".join(dropped))
        settings = document["Settings"]
    elif any(member in document for member in _SETTINGS_MEMBERS):
        settings = document
    else:
        raise InvalidJobError(
            "The job settings contain neither a Settings object nor Inputs or OutputGroups "
            f"(top-level keys: {', '.join(sorted(document)) or 'none'}): pass the JSON exported "
            "from the MediaConvert console or the Settings object of a CreateJob request."
        )
    if not isinstance(settings, Mapping):
        raise InvalidJobError(
            f"The job's Settings is a {type(settings).__name__}, not an object: pass the JSON "
            "exported from the MediaConvert console."
        )
    return copy.deepcopy(dict(settings))


def set_input(settings: dict[str, Any], input_uri: str) -> None:
    """Set the ``FileInput`` of the job's only input to ``input_uri``, in place."""
    inputs = settings.get("Inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        count = len(inputs) if isinstance(inputs, list) else 0
        raise InvalidJobError(
            f"The job settings have {count} inputs, but mc_tasks sets the input file only for jobs "
            "with exactly one input: keep one entry in Settings.Inputs."
        )
    previous = inputs[0].get("FileInput")
    if previous and previous != input_uri:
        logger.debug("Replacing the job settings' input %s with %s", previous, input_uri)
    inputs[0]["FileInput"] = input_uri


def rebase_destinations(settings: dict[str, Any], prefix: str) -> None:
    """Move every output group's ``Destination`` under ``prefix``, in place.

    The bucket of each destination is replaced by ``prefix`` and its key is
    kept: ``s3://other/out/hls/`` becomes ``<prefix>out/hls/``, and
    ``s3://other/video`` (a base name) becomes ``<prefix>video``. A group
    without a destination writes to ``prefix`` itself.
    """
    groups = settings.get("OutputGroups")
    if not isinstance(groups, list) or not groups:
        raise InvalidJobError(
            "The job settings have no OutputGroups: add at least one output group, or use "
            "presets instead of job_settings."
        )
    for index, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("OutputGroupSettings"), dict):
            raise InvalidJobError(
                f"OutputGroups[{index}] has no OutputGroupSettings object: export the job again "
                "from the MediaConvert console or add OutputGroupSettings with a Type."
            )
        group_type = group["OutputGroupSettings"].get("Type")
        member = GROUP_SETTINGS_BY_TYPE.get(group_type)
        if member is None:
            raise InvalidJobError(
                f"OutputGroups[{index}] has OutputGroupSettings.Type {group_type!r}: use one of "
                f"{', '.join(GROUP_SETTINGS_BY_TYPE)}."
            )
        group_settings = group["OutputGroupSettings"].setdefault(member, {})
        original = group_settings.get("Destination")
        key = parse_s3_uri(original, what="output destination").key if original else ""
        group_settings["Destination"] = f"{prefix}{key}"
        logger.debug("Output group %d writes to %s (was %s)", index,
                     group_settings["Destination"], original)


def _read_document(job_settings: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(job_settings, Mapping):
        return job_settings

    if isinstance(job_settings, str) and job_settings.lstrip().startswith(("{", "[")):
        text, source = job_settings, "the job settings JSON"
    else:
        path = Path(job_settings)
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InvalidJobError(
                f"Job settings file {source} was not found: pass an existing path, a JSON "
                "string or a dict."
            ) from None
        except OSError as exc:
            raise InvalidJobError(f"Cannot read job settings file {source}: {exc}.") from exc

    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJobError(
            f"Invalid JSON in {source} at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from exc
    if not isinstance(document, dict):
        raise InvalidJobError(
            f"{source} contains a JSON {type(document).__name__}, not an object: pass the job "
            "JSON exported from the MediaConvert console."
        )
    return document


__all__ = [
    "GROUP_SETTINGS_BY_TYPE",
    "load_job_settings",
    "rebase_destinations",
    "set_input",
]
