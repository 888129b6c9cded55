"""Who is calling: `Authorization: Bearer <key>` resolves to one party and its role."""

from __future__ import annotations

import anyio
from fastapi import Request

from danbao.api.problems import ApiCode
from danbao.api.services import Services
from danbao.errors import DanbaoError
from danbao.trade import Party
from danbao.trade.errors import TradeCode


class AuthError(DanbaoError):
    pass


def _presented_key(request: Request) -> str:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: Request) -> Party | None:
    """Resolve the bearer key once per request (the idempotency layer may already have)."""
    state = request.scope.setdefault("state", {})
    if "party" not in state:
        svc: Services = request.app.state.services
        presented = _presented_key(request)
        state["party"] = (svc.keys.cached(presented) or svc.keys.verify(presented)) if presented else None
    return state["party"]  # type: ignore[no-any-return]


async def current_party(request: Request) -> Party:
    """The calling party, from the verified-key cache when it can, else via the database."""
    state = request.scope.setdefault("state", {})
    if "party" not in state:
        svc: Services = request.app.state.services
        presented = _presented_key(request)
        cached = svc.keys.cached(presented) if presented else None
        # Only a key not verified moments ago costs a thread hop (the database read).
        state["party"] = cached if cached is not None else await anyio.to_thread.run_sync(authenticate, request)
    return _required(request, state["party"])


def _required(request: Request, party: Party | None, *, operator: bool = False) -> Party:
    if party is None:
        if not request.headers.get("authorization"):
            raise AuthError("send Authorization: Bearer <api key>", code=ApiCode.auth_required)
        raise AuthError("the API key is not valid (unknown, wrong or revoked)", code=ApiCode.auth_invalid)
    if operator and party.role != "operator":
        raise AuthError("only an operator may do this", code=TradeCode.role_forbidden)
    return party


# Routes resolve the caller themselves rather than through FastAPI dependencies: solving
# dependencies was a third of the CPU of a trade call, and these are the only two inputs.


def who(request: Request, *, operator: bool = False) -> tuple[Services, Party]:
    """For thread-pool routes: the services and the calling party (or 401/403)."""
    return request.app.state.services, _required(request, authenticate(request), operator=operator)


async def who_async(request: Request) -> tuple[Services, Party]:
    """For async routes: the same, without blocking the event loop."""
    return request.app.state.services, await current_party(request)
