"""A direct route calls its endpoint with the path parameters and the request, and refuses at
start-up any endpoint that would need FastAPI to solve something per request."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from danbao.api.direct import DirectRoute
from danbao.errors import InvariantViolation


class Refused(Exception):
    pass


def _app() -> FastAPI:
    app = FastAPI()

    async def echo(order_id: str, step: str, request: Request) -> Response:
        return JSONResponse({"order_id": order_id, "step": step, "body": (await request.body()).decode()}, status_code=201)

    async def refuse(request: Request) -> Response:
        raise Refused("no")

    async def not_a_response(request: Request) -> Response:
        return {"ok": True}  # type: ignore[return-value]

    app.router.routes.append(DirectRoute("/orders/{order_id}/{step}", echo, methods=["POST"]))
    app.router.routes.append(DirectRoute("/refuse", refuse, methods=["POST"]))
    app.router.routes.append(DirectRoute("/wrong", not_a_response, methods=["POST"]))

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        return JSONResponse({"code": "refused"}, status_code=409)

    return app


def _post(path: str, content: bytes = b"") -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://direct") as client:
            return await client.post(path, content=content)

    return anyio.run(post)


def test_the_endpoint_gets_its_path_parameters_and_the_request_and_its_response_is_sent() -> None:
    answer = _post("/orders/o-1/ship", b"parcel")
    assert answer.status_code == 201
    assert answer.json() == {"order_id": "o-1", "step": "ship", "body": "parcel"}


def test_an_endpoints_exception_reaches_the_applications_handlers() -> None:
    answer = _post("/refuse")
    assert (answer.status_code, answer.json()) == (409, {"code": "refused"})


def test_an_endpoint_that_returns_anything_but_a_response_fails_loudly() -> None:
    with pytest.raises(InvariantViolation):
        _post("/wrong")


def test_the_route_is_documented_from_the_endpoints_signature() -> None:
    spec = _app().openapi()
    parameters = spec["paths"]["/orders/{order_id}/{step}"]["post"]["parameters"]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in parameters] == [("order_id", "path", "string"), ("step", "path", "string")]


async def _with_query(order_id: str, request: Request, limit: int = 10) -> Response:
    return Response()


async def _int_path(order_id: int, request: Request) -> Response:
    return Response()


async def _no_request(order_id: str) -> Response:
    return Response()


def _sync(order_id: str, request: Request) -> Response:
    return Response()


async def _caller() -> str:
    return "me"


async def _with_dependency(order_id: str, request: Request, caller: str = Depends(_caller)) -> Response:
    return Response()


@pytest.mark.parametrize(
    "endpoint",
    [_with_query, _int_path, _no_request, _sync, _with_dependency],
    ids=["a query parameter", "a path parameter not text", "no request", "a sync endpoint", "a dependency"],
)
def test_an_endpoint_needing_anything_solved_is_refused_at_start_up(endpoint) -> None:
    with pytest.raises(InvariantViolation):
        DirectRoute("/orders/{order_id}", endpoint, methods=["POST"])


def test_router_level_dependencies_are_refused_too() -> None:
    async def fine(order_id: str, request: Request) -> Response:
        return Response()

    with pytest.raises(InvariantViolation):
        DirectRoute("/orders/{order_id}", fine, methods=["POST"], dependencies=[Depends(_caller)])
