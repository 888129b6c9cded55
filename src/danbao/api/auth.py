"""Who is calling: `Authorization: Bearer <key>` resolves to one party and its role."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Depends, Request

from danbao.api.services import Services
from danbao.errors import DanbaoError
from danbao.trade import Party


class AuthError(DanbaoError):
    pass


async def services(request: Request) -> Services:
    # async: a plain attribute read must not cost a hop to the thread pool.
    return request.app.state.services  # type: ignore[no-any-return]


def authenticate(request: Request) -> Party | None:
    """Resolve the bearer key once per request (the idempotency layer may already have)."""
    state = request.scope.setdefault("state", {})
    if "party" not in state:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        svc: Services = request.app.state.services
        state["party"] = svc.keys.verify(key.strip()) if scheme.lower() == "bearer" and key else None
    return state["party"]  # type: ignore[no-any-return]


async def current_party(request: Request) -> Party:
    state = request.scope.setdefault("state", {})
    if "party" in state:
        party = state["party"]
    else:
        svc: Services = request.app.state.services
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        cached = svc.keys.cached(key.strip()) if scheme.lower() == "bearer" and key else None
        party = cached if cached is not None else await anyio.to_thread.run_sync(authenticate, request)
        state["party"] = party
    if party is None:
        if not request.headers.get("authorization"):
            raise AuthError("send Authorization: Bearer <api key>", code="auth_required")
        raise AuthError("the API key is not valid (unknown, wrong or revoked)", code="auth_invalid")
    return party


async def require_operator(party: Annotated[Party, Depends(current_party)]) -> Party:
    if party.role != "operator":
        raise AuthError("only an operator may do this", code="role_forbidden")
    return party


Caller = Annotated[Party, Depends(current_party)]
Operator = Annotated[Party, Depends(require_operator)]
Svc = Annotated[Services, Depends(services)]
