"""Hot routes called straight, without FastAPI solving their parameters on every request.

FastAPI solves an endpoint's parameters per request (path, query, header, cookie and body
parameters and dependencies), and for a trade call that cost about an eighth of the event
loop's CPU (py-spy, 16 clients): more than the call's own routing. The trade calls need
none of it. They take their path parameters, as text, and the request, read their bodies
with `json_body`, and return a finished `Response`.

`DirectRoute` keeps all that FastAPI derives from the endpoint's signature (the OpenAPI
document, the response model's schema) and at run time calls the endpoint with the path
parameters Starlette matched and the request, then sends its response. It skips FastAPI's
per-route wrapping too (two exit stacks for dependencies with `yield`, and a second
exception handler): a direct route has no such dependencies, and its exceptions reach the
application's own handlers (`ExceptionMiddleware`) unchanged. It refuses, at start-up, an
endpoint whose signature asks for anything more, so no parameter can silently go unsolved.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from danbao.api.query import check_query
from danbao.errors import invariant

_NOTHING: frozenset[str] = frozenset()


class DirectRoute(APIRoute):
    """An APIRoute whose async endpoint takes only `request` and text path parameters."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self._check_direct()
        handler = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def direct(request: Request) -> Response:
            check_query(request, _NOTHING)  # a direct route reads nothing but its path
            response = await endpoint(request=request, **request.path_params)
            invariant(isinstance(response, Response), "a direct route returns a finished Response")
            return response

        return direct

    def _check_direct(self) -> None:
        """What FastAPI made of the signature (`self.dependant`) leaves nothing to solve."""
        d, path = self.dependant, self.path
        invariant(inspect.iscoroutinefunction(self.endpoint), f"{path}: a direct route's endpoint is async")
        invariant(d.request_param_name == "request", f"{path}: a direct route's endpoint takes `request: Request`")
        path_names = {field.name for field in d.path_params}
        invariant(
            set(inspect.signature(self.endpoint).parameters) == path_names | {"request"},
            f"{path}: a direct route's endpoint takes only its path parameters and the request",
        )
        invariant(not (d.query_params or d.header_params or d.cookie_params or d.body_params), f"{path}: nothing but the path is read")
        invariant(not (self.dependencies or d.dependencies), f"{path}: a direct route has no dependencies")
        invariant(all(field.field_info.annotation is str for field in d.path_params), f"{path}: a direct route's path parameters are text")



class Rendered(Response):
    """A response model already serialised: FastAPI passes a Response through, so the model
    is not validated a second time on the way out (the route's response_model still names
    it in the OpenAPI document), and an idempotency record stores these very bytes."""

    media_type = "application/json"


__all__ = ["DirectRoute", "Rendered"]
