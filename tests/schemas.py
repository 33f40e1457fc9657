"""Validate gateway output against OpenAI's published schemas (copied into tests/fixtures with their
MIT licence). ``validate("CreateChatCompletionResponse", obj)`` raises on a mismatch."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import jsonschema

FIXTURE = Path(__file__).parent / "fixtures" / "openai_schemas.json"


@lru_cache(maxsize=1)
def _document() -> dict:
    return _nullable(json.loads(FIXTURE.read_text()))


def _nullable(node):
    """The spec marks optional-null fields OpenAPI-3.0 style (``nullable: true``): make JSON Schema see them."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "$ref" in node or "anyOf" in node or "oneOf" in node or "allOf" in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Validator:
    document = _document()
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    return cls(schema)


def validate(name: str, instance) -> None:
    errors = sorted(_validator(name).iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5])
        raise AssertionError(f"{name} schema violation: {details}")
