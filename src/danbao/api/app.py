"""The FastAPI application: routes, the problem+json error handlers, and the middleware that
bounds bodies, makes POSTs idempotent and counts requests for Prometheus.

`RequestGate` is the one middleware: metrics, the body bound and idempotency.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from danbao.api.auth import current_party
from danbao.api.body import body_schemas
from danbao.api.idempotency import (
    KEY_CHARS_MAX,
    SCOPE_KEY,
    Claim,
    IdempotencyError,
    IdempotencyStore,
    Replayed,
)
from danbao.api.models import Problem
from danbao.api.problems import PROBLEM_JSON, ApiCode, problem
from danbao.api.routes import money, operator, parties, trades, webhooks
from danbao.api.services import Services
from danbao.errors import DanbaoError
from danbao.ledger.joined import joining
from danbao.ledger.results import ReadCode
from danbao.trade import Party
from danbao.trade.errors import TradeCode

BODY_BYTES_MAX = 64 * 1024
METRIC_SERIES_MAX = 10_000
TELEMETRY_OFF: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
# Field names whose validation failures carry the code the domain (or the webhooks) gives
# that very mistake, so a client sees one code for it however it is caught.
FIELD_CODES = {"amount": TradeCode.amount_invalid, "currency": TradeCode.currency_unknown, "model": TradeCode.model_unknown, "role": TradeCode.role_invalid, "items": TradeCode.items_invalid, "name": TradeCode.name_invalid,
               "reason": TradeCode.claim_reason_invalid, "evidence": TradeCode.evidence_invalid, "decision": TradeCode.decision_invalid, "method": TradeCode.collect_method_invalid, "limit": ReadCode.limit_invalid, "after": ReadCode.cursor_invalid, "at": ReadCode.timestamp_invalid, "anchor": ReadCode.anchor_invalid,
               "url": ApiCode.url_invalid, "event_types": ApiCode.event_types_invalid, "id": TradeCode.party_id_invalid, "cash_limit": TradeCode.amount_invalid}


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        # Prometheus metrics are ours (RequestGate); FastAPI's own OpenTelemetry spans,
        # metrics and logs would cost every request again for providers nobody set up.
        telemetry=TELEMETRY_OFF,
        title="danbao",
        version="1",
        description="Trust and payments for commerce: escrow, direct and cash-on-delivery trades on one double-entry ledger. "
        "Amounts are integers in minor units. Authenticate with `Authorization: Bearer <key>`; every POST takes `Idempotency-Key`.",
    )
    app.state.services = services
    for module in (trades, money, parties, webhooks, operator):
        # The routes themselves, not `include_router`: FastAPI then matches a flat list
        # instead of re-deriving each included router's context on every request (a third
        # of the CPU of a trade call). Trades first: they are the hot paths.
        app.router.routes.extend(module.router.routes)
    metrics = Metrics(services)
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(DanbaoError)
    async def danbao_error(_: Request, error: DanbaoError) -> Response:
        return problem(error.code, error.message, field=error.field)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, error: Exception) -> Response:
        # Starlette's last resort answers in plain text; every answer here is a problem.
        # The error still goes on to the server, which logs it.
        return problem(ApiCode.internal_error, "the server failed on this request; the fault is ours and is logged")

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {}
        location = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(location) or None
        if first.get("type") == "json_invalid":
            return problem(ApiCode.body_invalid, "the body is not valid JSON")
        # A member the body may not have is the request's fault, not that field's, even
        # where another operation takes a field of that name.
        known = first.get("type") != "extra_forbidden"
        code = FIELD_CODES.get(location[0] if location and known else "", ApiCode.request_invalid)
        return problem(code, f"{field or 'request'}: {first.get('msg', 'invalid')}", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: ApiCode.not_found, 405: ApiCode.method_not_allowed}.get(error.status_code, ApiCode.request_invalid)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            # Every route on this path, not only the first one the router tried (RFC 9110).
            allowed = {m for r in app.routes if r.matches(request.scope)[0] != Match.NONE for m in (getattr(r, "methods", None) or ())}
            if "GET" in allowed:
                allowed.add("HEAD")  # see RequestGate._as_get
            headers["Allow"] = ", ".join(sorted(allowed))
        return problem(code, str(error.detail), status=error.status_code, headers=headers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec.setdefault("components", {}).setdefault("schemas", {}).update(body_schemas())
            app.openapi_schema = _problem_json_errors(spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(RequestGate, metrics=metrics)
    return app


ERROR_STATUSES = ("400", "401", "403", "404", "409", "413", "415", "422", "503")
ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"description": 'the scheme to use: Bearer realm="danbao"', "schema": {"type": "string"}}},
    "503": {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}},
}


def _problem_json_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """Every error is problem+json with the Problem schema, on every operation."""
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    for operations in spec.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in ERROR_STATUSES:
                responses[status] = {"description": "a problem (RFC 9457)", "content": {PROBLEM_JSON: {"schema": problem_ref}}}
                if status in ERROR_HEADERS:
                    responses[status]["headers"] = ERROR_HEADERS[status]
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    # The schema every error refers to: FastAPI adds a model only where a route names it,
    # and no route here does (the handlers answer for all of them).
    schemas["Problem"] = Problem.model_json_schema()
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("danbao_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("danbao_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.registry.register(StoreCollector(services))
        # Labelled children, looked up once: `labels()` costs more than the increment.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # Every label from a bounded set: a client choosing methods must not mint series.
        method = method if method in _METHODS else "other"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > METRIC_SERIES_MAX:
                self._children.clear()  # bounded; the registry keeps the series themselves
            children = self._children[key] = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)


class StoreCollector:
    """Figures read from the database at scrape time, so every process reports the same truth."""

    def __init__(self, services: Services):
        self.services = services

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only

    def collect(self) -> Any:
        def read(raw):  # type: ignore[no-untyped-def]
            [(transfers,)] = raw.rows("SELECT transfers_count FROM ledger_head WHERE id = 1")
            deliveries = raw.rows("SELECT state, COUNT(*), COALESCE(SUM(attempts), 0) FROM webhook_deliveries GROUP BY state")
            return int(transfers), deliveries

        transfers, deliveries = self.services.db.read_raw(read)
        yield CounterMetricFamily("danbao_ledger_transfers", "Journal entries committed to the ledger", value=transfers)
        by_state = GaugeMetricFamily("danbao_webhook_deliveries", "Webhook deliveries by state", labels=["state"])
        attempts = CounterMetricFamily("danbao_webhook_delivery_attempts", "Webhook delivery attempts made", labels=["state"])
        for state, count, tries in deliveries:
            by_state.add_metric([state], int(count))
            attempts.add_metric([state], int(tries))
        yield by_state
        yield attempts


async def _send_problem(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status_code, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})


class RequestGate:
    """Every HTTP request passes here once: it is counted and timed for Prometheus; a body
    is read whole, at most BODY_BYTES_MAX (413 before any work); and a POST with an
    Idempotency-Key runs once per party and key, later retries getting the first response.
    A HEAD is answered as the GET it names, without the body.

    One ASGI layer rather than three: each layer costs every request a coroutine and a
    wrapped `send`, and the API's budget per trade call is about a millisecond.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._bounded(scope, receive, counted)
        finally:
            self.metrics.observe(scope["method"], getattr(scope.get("route"), "path", "unmatched"), status[0], time.perf_counter() - start)

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":
            await self._as_get(scope, receive, send)
            return
        if scope["method"] in ("GET", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > BODY_BYTES_MAX):
            await _send_problem(send, problem(ApiCode.body_too_large, f"bodies are at most {BODY_BYTES_MAX} bytes"))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > BODY_BYTES_MAX:
                await _send_problem(send, problem(ApiCode.body_too_large, f"bodies are at most {BODY_BYTES_MAX} bytes"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        key = headers.get(b"idempotency-key")
        if key is None or scope["method"] != "POST":
            await self.app(scope, replay, send)
            return
        await self._idempotent(scope, replay, send, key.decode("latin-1"), body)

    async def _as_get(self, scope: Scope, receive: Receive, send: Send) -> None:
        """HEAD is GET without the body (RFC 9110 9.3.2): routed and answered as GET, its
        headers, Content-Length included, kept; the server, whose scope still says HEAD,
        sends no body."""
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send)
        finally:
            if "route" in as_get:  # for the metrics' route label
                scope["route"] = as_get["route"]

    async def _idempotent(self, scope: Scope, receive: Receive, send: Send, key: str, body: bytes) -> None:
        if not 0 < len(key) <= KEY_CHARS_MAX or not key.isprintable():
            await _send_problem(send, problem(ApiCode.idempotency_key_invalid, f"Idempotency-Key is 1 to {KEY_CHARS_MAX} printable characters", field="Idempotency-Key"))
            return
        request = Request(scope, receive)
        services: Services = scope["app"].state.services
        try:
            party: Party | None = await current_party(request)
        except DanbaoError:
            party = None
        if party is None:
            await self.app(scope, receive, send)  # the route answers 401
            return
        digest = hashlib.sha256(b"POST\n" + scope["path"].encode() + b"\n" + body).hexdigest()
        store = services.idempotency
        try:
            claim = store.claim(party.id, key, digest)
        except IdempotencyError as error:
            await _send_problem(send, problem(error.code, error.message, field=error.field))
            return
        try:
            await self._claimed(scope, receive, send, claim, store)
        finally:
            store.release(claim)

    async def _claimed(self, scope: Scope, receive: Receive, send: Send, claim: Claim, store: IdempotencyStore) -> None:
        # The response is held back until its record is stored: a client that retries as
        # soon as it has the answer must get the replay, not a 409.
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        scope[SCOPE_KEY] = claim
        try:
            with joining(claim):
                await self.app(scope, receive, hold)
        except Replayed as replay:
            media = PROBLEM_JSON if replay.status_code >= 400 else "application/json"
            headers = [(b"content-type", media.encode()), (b"content-length", str(len(replay.body)).encode()), (b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": replay.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": replay.body})
            return
        status = next((m["status"] for m in held if m["type"] == "http.response.start"), 500)
        try:
            await store.settle(claim, status, b"".join(m.get("body", b"") for m in held if m["type"] == "http.response.body"))
        except DanbaoError as error:  # the database failed the record: 503, and a retry learns the rest
            await _send_problem(send, problem(error.code, error.message))
            return
        for message in held:
            await send(message)


__all__ = ["create_app"]
