"""Who is calling: `Authorization: Bearer <key>` resolves to one party and its role."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from danbao.api.services import Services
from danbao.errors import DanbaoError
from danbao.trade import Party


class AuthError(DanbaoError):
    pass


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def authenticate(request: Request) -> Party | None:
    """Resolve the bearer key once per request (the idempotency layer may already have)."""
    state = request.scope.setdefault("state", {})
    if "party" not in state:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        state["party"] = services(request).keys.verify(key.strip()) if scheme.lower() == "bearer" and key else None
    return state["party"]  # type: ignore[no-any-return]


def current_party(request: Request) -> Party:
    party = authenticate(request)
    if party is None:
        if not request.headers.get("authorization"):
            raise AuthError("send Authorization: Bearer <api key>", code="auth_required")
        raise AuthError("the API key is not valid (unknown, wrong or revoked)", code="auth_invalid")
    return party


def require_operator(party: Annotated[Party, Depends(current_party)]) -> Party:
    if party.role != "operator":
        raise AuthError("only an operator may do this", code="role_forbidden")
    return party


Caller = Annotated[Party, Depends(current_party)]
Operator = Annotated[Party, Depends(require_operator)]
Svc = Annotated[Services, Depends(services)]
