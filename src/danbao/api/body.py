"""JSON request bodies for the hot routes (the trade calls), read by hand to FastAPI's rules.

FastAPI's own body handling (a body parameter solved as a dependency, the content type
parsed with the email package) cost a trade call about a fifth of its CPU. A hot route
instead declares only `request` and calls `json_body`: JSON only, validated by the same
pydantic model in the same (python) mode, failures raised as `RequestValidationError` so
they become the same problem+json. `documented` puts the body into the OpenAPI document
as FastAPI would have, and `body_schemas` supplies the models' component schemas.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_SCHEMA_REF = "#/components/schemas/{model}"
_documented: dict[str, type[BaseModel]] = {}


@cache  # per model, not per request: a model's fields never change
def _optional(model: type[BaseModel]) -> bool:
    """Every field has a default, so the body itself may be left out."""
    return all(not f.is_required() for f in model.model_fields.values())


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _invalid(error_type: str, message: str, *loc: Any) -> RequestValidationError:
    return RequestValidationError([{"type": error_type, "loc": ("body", *loc), "msg": message, "input": None}])


async def json_body(request: Request, model: type[M]) -> M:
    """The request's body as `model`, or a RequestValidationError (400 problem+json)."""
    raw = await request.body()  # already read whole, and bounded, by the request gate
    if not raw:
        if _optional(model):
            return model()
        raise _invalid("missing", "Field required")
    if not _is_json(request.headers.get("content-type", "")):
        raise _invalid("model_attributes_type", "send the body as application/json")
    try:
        value = json.loads(raw)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise _invalid("json_invalid", f"JSON decode error: {error}", 0) from error
    if value is None and _optional(model):
        return model()
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]) from error


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` with `json_body`."""
    _documented[model.__name__] = model
    ref = {"$ref": _SCHEMA_REF.format(model=model.__name__)}
    schema = {"anyOf": [ref, {"type": "null"}], "title": "Body"} if _optional(model) else ref
    return {"requestBody": {"required": not _optional(model), "content": {"application/json": {"schema": schema}}}}


def body_schemas() -> dict[str, Any]:
    """Component schemas of every documented body model (and the models they use)."""
    schemas: dict[str, Any] = {}
    for name, model in _documented.items():
        schema = model.model_json_schema(ref_template=_SCHEMA_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return schemas


__all__ = ["body_schemas", "documented", "json_body"]
