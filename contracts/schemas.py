"""The partner contract's JSON Schemas, as validators.

The schema files in `contracts/schemas/` are the single source of truth for
the partner's payloads: the OpenAPI document refers to them, the fake
partner serves them bundled, and tests validate real answers against them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.yaml"
SchemaName = Literal["order", "page", "token", "error", "acknowledgement", "report"]


@cache
def load_schema(name: SchemaName) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS_DIR / f"{name}.schema.json").read_text())
    return schema


@cache
def _registry() -> Registry:
    resources = []
    for file in sorted(SCHEMAS_DIR.glob("*.schema.json")):
        contents = json.loads(file.read_text())
        resource = Resource.from_contents(contents)
        resources += [(contents["$id"], resource), (file.name, resource)]
    return Registry().with_resources(resources)


@cache
def validator(name: SchemaName) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name), registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(name: SchemaName, instance: Any) -> list[str]:
    """Every way `instance` breaks schema `name`, as "json.path: message"."""
    return sorted(f"{error.json_path}: {error.message}"
                  for error in validator(name).iter_errors(instance))


def is_valid(name: SchemaName, instance: Any) -> bool:
    return bool(validator(name).is_valid(instance))
