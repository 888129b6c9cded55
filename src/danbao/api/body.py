"""JSON request bodies for the hot routes (the trade calls), read by hand to FastAPI's rules.

FastAPI's own body handling (a body parameter solved as a dependency, the content type
parsed with the email package) cost a trade call about a fifth of its CPU. A hot route
instead declares only `request` and calls `json_body`: JSON only, validated by the same
pydantic model in the same (python) mode, failures raised as `RequestValidationError` so
they become the same problem+json. `documented` puts the body into the OpenAPI document
as FastAPI would have, and `body_schemas` supplies the models' component schemas.

Both paths decode with `loads`, strict RFC 8259 JSON: UTF-8 only; no duplicate member
names (parsers disagree on which one wins, so a body could mean one amount to a proxy that
checked it and another to us); no NaN or Infinity, nor numbers too large to be finite; no
unpaired surrogates (text no response could echo back); and nesting past the interpreter's
recursion limit refused as malformed rather than failing the request with a 500.
`StrictJsonRoute` gives the routes FastAPI reads bodies for the same decoder.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine
from functools import cache
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from danbao.api.problems import ApiCode
from danbao.api.query import check_query, declared_parameters
from danbao.errors import DanbaoError

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


def check_media_type(request: Request) -> None:
    """A body must say it is JSON (FastAPI's strict content type, on every route): one sent
    as anything else, or as nothing, is refused with 415 before it is read."""
    content_type = request.headers.get("content-type")
    if content_type is None or not _is_json(content_type):
        sent = "no Content-Type" if content_type is None else repr(content_type[:64])
        raise DanbaoError(f"send the body as application/json, not {sent}", field="Content-Type", code=ApiCode.media_type_unsupported)


def _has_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ValueError(f"duplicate member name {duplicate!r}")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise ValueError(f"{text} is out of range")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members, parse_constant=_no_constant, parse_float=_finite)
# A \uD800-\uDFFF escape: a surrogate, which JSON lets through unpaired but Unicode text
# (and so any response that echoes it back) cannot hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(raw: bytes) -> Any:
    """Decode a request body as strict JSON, or raise `json.JSONDecodeError`."""
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(raw):  # rare: only then look for one left unpaired
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        raise json.JSONDecodeError(str(error), "", 0) from error


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose request bodies FastAPI decodes with `loads`, and whose query
    strings hold only the parameters it declares (`danbao.api.query`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = declared_parameters(self)

        takes_body = self.body_field is not None

        async def strict(request: Request) -> Response:
            check_query(request, declared)
            if takes_body and _has_body(request):
                check_media_type(request)
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


def _invalid(error_type: str, message: str, *loc: Any) -> RequestValidationError:
    return RequestValidationError([{"type": error_type, "loc": ("body", *loc), "msg": message, "input": None}])


async def json_body(request: Request, model: type[M]) -> M:
    """The request's body as `model`, or a RequestValidationError (400 problem+json)."""
    raw = await request.body()  # already read whole, and bounded, by the request gate
    if not raw:
        if _optional(model):
            return model()
        raise _invalid("missing", "Field required")
    check_media_type(request)
    try:
        value = loads(raw)
    except json.JSONDecodeError as error:
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


__all__ = ["StrictJsonRoute", "body_schemas", "documented", "json_body", "loads"]
