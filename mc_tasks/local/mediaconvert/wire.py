"""Conversion between MediaConvert's REST-JSON wire format and API shape names.

The wire uses each member's ``locationName`` (camelCase, such as ``fileInput``);
botocore and this server's code use the shape member names (PascalCase, such as
``FileInput``). Both directions walk botocore's model, so no field name is
written by hand. Requests are checked against the model while converting: an
unknown member, a value of the wrong JSON type or a string outside its enum is
a :class:`BadRequest` naming the member path.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape

from mc_tasks.local.mediaconvert.api_errors import BadRequest
from mc_tasks.local.mediaconvert.model import service_model

_JSON_TYPES: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "boolean": (bool,),
}


def from_wire(shape: Shape, value: Any, path: str) -> Any:
    """Convert a decoded JSON value from wire member names to API member names.

    ``path`` names the value in error messages, for example ``Settings``.
    """
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            raise BadRequest(f"{path} must be an object, got {type(value).__name__}.")
        by_wire_name = {member.serialization.get("name", name): name
                        for name, member in shape.members.items()}
        converted: dict[str, Any] = {}
        for wire_name, item in value.items():
            name = by_wire_name.get(wire_name)
            if name is None:
                raise BadRequest(f"{path}.{wire_name} is not a member of {shape.name}.")
            converted[name] = from_wire(shape.members[name], item, f"{path}.{name}")
        return converted
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            raise BadRequest(f"{path} must be a list, got {type(value).__name__}.")
        return [from_wire(shape.member, item, f"{path}[{index}]")
                for index, item in enumerate(value)]
    if isinstance(shape, MapShape):
        if not isinstance(value, dict):
            raise BadRequest(f"{path} must be an object, got {type(value).__name__}.")
        return {key: from_wire(shape.value, item, f"{path}.{key}") for key, item in value.items()}
    return _scalar_from_wire(shape, value, path)


def _scalar_from_wire(shape: Shape, value: Any, path: str) -> Any:
    expected = _JSON_TYPES.get(shape.type_name)
    wrong_bool = isinstance(value, bool) and shape.type_name != "boolean"
    if expected is not None and (wrong_bool or not isinstance(value, expected)):
        raise BadRequest(f"{path} must be of type {shape.type_name}, got {value!r}.")
    enum = getattr(shape, "enum", None)
    if enum and value not in enum:
        raise BadRequest(f"{path}={value} is invalid: expected one of {', '.join(enum)}.")
    return value


def to_wire(shape: Shape, value: Any) -> Any:
    """Convert a value from API member names to wire member names; ``None`` members are left out.

    Timestamps may be given as :class:`datetime.datetime` or epoch seconds and
    are sent as epoch seconds, the ``unixTimestamp`` format of this API.
    """
    if isinstance(shape, StructureShape):
        return {
            member.serialization.get("name", name): to_wire(member, value[name])
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if isinstance(shape, ListShape):
        return [to_wire(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {key: to_wire(shape.value, item) for key, item in value.items()}
    if shape.type_name == "timestamp" and isinstance(value, datetime.datetime):
        return value.timestamp()
    return value


@dataclass(frozen=True)
class Route:
    """One operation's HTTP method and URI template, compiled to a pattern."""

    operation: OperationModel
    method: str
    pattern: re.Pattern[str]


def _compile_route(operation: OperationModel) -> Route:
    template = operation.http["requestUri"].split("?", 1)[0]
    regex = ""
    for part in re.split(r"(\{[^}]+\})", template):
        if part.startswith("{"):
            name = part[1:-1]
            greedy = name.endswith("+")
            name = name.rstrip("+")
            regex += f"(?P<{name}>.+)" if greedy else f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return Route(operation, operation.http["method"], re.compile(f"^{regex}$"))


def routes() -> list[Route]:
    """Return a route for every operation of the model, literal paths before templated ones."""
    compiled = [_compile_route(service_model().operation_model(name))
                for name in service_model().operation_names]
    return sorted(compiled, key=lambda route: route.pattern.pattern.count("(?P<"))


def match_route(all_routes: list[Route], method: str, path: str
                ) -> tuple[Route, dict[str, str]] | None:
    """Return the route for ``method`` and ``path`` and its URI parameters, or None."""
    for route in all_routes:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found:
            return route, {name: unquote(value) for name, value in found.groupdict().items()}
    return None


def parse_request(operation: OperationModel, uri_params: Mapping[str, str],
                  query: Mapping[str, list[str]], body: bytes) -> dict[str, Any]:
    """Build an operation's input, in API member names, from the parts of an HTTP request."""
    shape = operation.input_shape
    if shape is None:
        return {}
    try:
        document = json.loads(body) if body.strip() else {}
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(document, dict):
        raise BadRequest("The request body must be a JSON object.")

    body_members = {name: member for name, member in shape.members.items()
                    if "location" not in member.serialization}
    params: dict[str, Any] = {}
    for wire_name, value in document.items():
        name = next((name for name, member in body_members.items()
                     if member.serialization.get("name", name) == wire_name), None)
        if name is None:
            raise BadRequest(f"{wire_name} is not a member of {shape.name}.")
        params[name] = from_wire(body_members[name], value, name)

    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if location == "uri" and wire_name in uri_params:
            params[name] = uri_params[wire_name]
        elif location == "querystring" and wire_name in query:
            params[name] = _query_value(member, query[wire_name][-1], name)

    missing = [name for name in shape.required_members if name not in params]
    if missing:
        raise BadRequest(f"Missing required parameter {', '.join(missing)}.")
    return params


def _query_value(shape: Shape, text: str, path: str) -> Any:
    if shape.type_name == "integer":
        try:
            return int(text)
        except ValueError as exc:
            raise BadRequest(f"{path} must be an integer, got {text!r}.") from exc
    return _scalar_from_wire(shape, text, path)


def encode_response(operation: OperationModel, result: Mapping[str, Any]) -> bytes:
    """Serialize an operation's output, given in API member names, as the wire's JSON body."""
    shape = operation.output_shape
    document = to_wire(shape, result) if shape is not None else {}
    return json.dumps(document).encode()
