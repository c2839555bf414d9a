"""Check a real answer against the partner's OpenAPI document.

`ResponseChecker` says whether the status is documented for the operation,
the body matches the documented schema, and the required headers are there.
It is what schemathesis does per response, as a plain function a test (or a
user's own test) can call on any recorded answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from partnerkit.simulator.openapi_doc import openapi_bytes

DOCUMENT_URI = "urn:partnerkit:openapi"


@cache
def openapi_document() -> dict[str, Any]:
    """The bundled OpenAPI 3.1 document (as the fake partner serves it)."""
    document: dict[str, Any] = json.loads(openapi_bytes())
    return document


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    template: str


@cache
def _routes() -> tuple[_Route, ...]:
    routes = []
    for template in openapi_document()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        routes.append(_Route(re.compile(regex + r"\Z"), template))
    return tuple(routes)


@cache
def _registry() -> Registry:
    resource: Resource[Any] = Resource.from_contents(openapi_document(),
                                                     default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    return registry


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class ResponseChecker:
    """Problems of one answer against the contract; an empty list means it conforms."""

    def problems(self, method: str, path: str, status: int, headers: dict[str, str],
                 body: bytes) -> list[str]:
        route = next((r for r in _routes() if r.pattern.match(path)), None)
        if route is None:
            return [f"{method} {path}: no such path in the contract"]
        operation = openapi_document()["paths"][route.template].get(method.lower())
        if operation is None:
            return [f"{method} {route.template}: no such operation in the contract"]
        label = f"{method} {route.template} -> {status}"
        response = operation["responses"].get(str(status))
        if response is None:
            return [f"{label}: status not documented (documented: "
                    f"{', '.join(operation['responses'])})"]
        pointer_parts = ["paths", route.template, method.lower(), "responses", str(status)]
        if "$ref" in response:
            name = response["$ref"].rsplit("/", 1)[1]
            response = openapi_document()["components"]["responses"][name]
            pointer_parts = ["components", "responses", name]
        problems = []
        lowered = {name.lower(): value for name, value in headers.items()}
        for name, spec in response.get("headers", {}).items():
            if "$ref" in spec:
                spec = openapi_document()["components"]["headers"][spec["$ref"].rsplit("/", 1)[1]]
            if spec.get("required") and name.lower() not in lowered:
                problems.append(f"{label}: required header {name} is missing")
        content = response.get("content")
        if content:
            content_type = lowered.get("content-type", "").split(";")[0].strip()
            if content_type not in content:
                return [*problems, f"{label}: content type {content_type!r} not documented"]
            try:
                instance = json.loads(body)
            except ValueError as exc:
                return [*problems, f"{label}: body is not JSON ({exc})"]
            pointer = _pointer(*pointer_parts, "content", content_type, "schema")
            validator = Draft202012Validator({"$ref": f"{DOCUMENT_URI}#/{pointer}"},
                                             registry=_registry())
            problems += [f"{label}: body {error.json_path}: {error.message}"
                         for error in validator.iter_errors(instance)]
        return problems
