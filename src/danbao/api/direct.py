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

from danbao.errors import invariant


class DirectRoute(APIRoute):
    """An APIRoute whose async endpoint takes only `request` and text path parameters."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        _check_direct(path, endpoint)
        super().__init__(path, endpoint, **kwargs)
        invariant(not self.dependencies and not self.dependant.dependencies, f"{path}: a direct route has no dependencies")
        handler = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await handler(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def direct(request: Request) -> Response:
            response = await endpoint(request=request, **request.path_params)
            invariant(isinstance(response, Response), "a direct route returns a finished Response")
            return response

        return direct


def _check_direct(path: str, endpoint: Callable[..., Any]) -> None:
    invariant(inspect.iscoroutinefunction(endpoint), f"{path}: a direct route's endpoint is async")
    hints = inspect.get_annotations(endpoint, eval_str=True)
    names = {name for name in inspect.signature(endpoint).parameters if name != "request"}
    invariant(hints.get("request") is Request, f"{path}: a direct route's endpoint takes `request: Request`")
    path_names = {piece[1:-1] for piece in path.split("/") if piece.startswith("{") and piece.endswith("}")}
    invariant(names == path_names, f"{path}: a direct route's endpoint takes only its path parameters and the request")
    invariant(all(hints.get(name) is str for name in names), f"{path}: a direct route's path parameters are text")


__all__ = ["DirectRoute"]
