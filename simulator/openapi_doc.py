"""The partner contract as `/openapi.json`, bundled from contracts/ at load time.

`contracts/openapi.yaml` refers to the JSON Schema files beside it; here
those references become `#/components/schemas/...`, so the served document
is self-contained. The fake partner reads these files as data and imports
nothing from `contracts` (it must not know the tests that judge it).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
SCHEMA_SUFFIX = ".schema.json"


def component_name(reference: str) -> str:
    """"./schemas/order.schema.json" -> "Order"."""
    stem = Path(reference).name.removesuffix(SCHEMA_SUFFIX)
    return "".join(part.capitalize() for part in stem.replace("-", "_").split("_"))


def _rewrite(node: Any, found: set[str]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and not reference.startswith("#"):
            found.add(Path(reference).name)
            return {**node, "$ref": f"#/components/schemas/{component_name(reference)}"}
        return {key: _rewrite(value, found) for key, value in node.items()}
    if isinstance(node, list):
        return [_rewrite(item, found) for item in node]
    return node


@cache
def openapi_bytes() -> bytes:
    """The bundled OpenAPI 3.1 document, serialized once."""
    yaml = YAML(typ="safe", pure=True)
    document = yaml.load((CONTRACTS_DIR / "openapi.yaml").read_text())
    pending: set[str] = set()
    document = _rewrite(document, pending)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    done: set[str] = set()
    while pending - done:
        file_name = sorted(pending - done)[0]
        done.add(file_name)
        schema = json.loads((CONTRACTS_DIR / "schemas" / file_name).read_text())
        schema.pop("$schema", None)
        schema.pop("$id", None)
        schemas[component_name(file_name)] = _rewrite(schema, pending)
    return json.dumps(document, separators=(",", ":")).encode()
