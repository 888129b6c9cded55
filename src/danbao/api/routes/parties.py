"""Parties and their API keys: operators create parties and issue keys; a party sees itself."""

from __future__ import annotations

from fastapi import APIRouter, Request

from danbao.api.auth import AuthError, who
from danbao.api.body import StrictJsonRoute
from danbao.api.idempotency import keep_without
from danbao.api.keys import KeyInfo, KeyRevoked, TooManyKeys
from danbao.api.models import KeyOut, KeyPage, NoBody, PartyIn, PartyOut
from danbao.api.problems import ApiCode
from danbao.api.routes.paging import PAGE_DEFAULT, CreatedCursor, Limit, created_cursor, cursor
from danbao.errors import DanbaoError
from danbao.trade import Party, TradeCode, TradeError

router = APIRouter(prefix="/v1", tags=["parties"], route_class=StrictJsonRoute)


def party_out(p: Party) -> PartyOut:
    return PartyOut(id=p.id, role=p.role, name=p.name, cash_limit=p.cash_limit, late_remittances=p.late_remittances, created_at=p.created_at)


def _visible_party(svc, caller: Party, party_id: str) -> Party:  # type: ignore[no-untyped-def]
    if caller.role != "operator" and caller.id != party_id:
        raise TradeError(TradeCode.party_not_found, f"no party {party_id!r}", field="party_id")
    return svc.trades.parties.get(party_id)  # type: ignore[no-any-return]


def _own_key(svc, caller: Party, key_id: str) -> KeyInfo:  # type: ignore[no-untyped-def]
    info = svc.keys.get(key_id)
    if info is None or (caller.role != "operator" and info.party_id != caller.id):
        raise AuthError(f"no key {key_id!r}", code=ApiCode.key_not_found, field="key_id")
    return info  # type: ignore[no-any-return]


@router.post("/parties", status_code=201, response_model=PartyOut)
def create_party(body: PartyIn, request: Request) -> PartyOut:
    """Create a buyer, seller, courier, arbiter or operator (operators only)."""
    svc, _ = who(request, operator=True)
    try:
        return party_out(svc.trades.parties.create(body.role, body.name, party_id=body.id, cash_limit=body.cash_limit))
    except TradeError as error:
        if error.field == "party_id":
            error.field = "id"  # what this body calls it
        raise


@router.get("/parties/{party_id}", response_model=PartyOut)
def get_party(party_id: str, request: Request) -> PartyOut:
    """A party: the caller itself, or any party for an operator (others get 404)."""
    svc, caller = who(request)
    return party_out(_visible_party(svc, caller, party_id))


@router.post("/parties/{party_id}/keys", status_code=201, response_model=KeyOut)
def issue_key(party_id: str, request: Request, body: NoBody | None = None) -> KeyOut:
    """Issue an API key acting as the party; the secret is in this response only (a keyed
    retry replays it with `key` null)."""
    svc, _ = who(request, operator=True)
    party = svc.trades.parties.get(party_id)
    keep_without(request.scope, "key")
    try:
        issued = svc.keys.issue(party.id)
    except TooManyKeys as error:
        raise DanbaoError(str(error), code=ApiCode.keys_limit) from error
    return KeyOut(id=issued.id, party_id=issued.party_id, key=issued.key, created_at=issued.created_at)


@router.get("/parties/{party_id}/keys", response_model=KeyPage)
def list_keys(party_id: str, request: Request, after: CreatedCursor = None, limit: Limit = PAGE_DEFAULT) -> KeyPage:
    """The party's keys, revoked ones too, oldest first (never their secrets)."""
    svc, caller = who(request)
    _visible_party(svc, caller, party_id)
    found = svc.keys.of_party(party_id, after=cursor(after, int, str), limit=limit)
    return KeyPage(data=[KeyOut(id=k.id, party_id=k.party_id, created_at=k.created_at, revoked_at=k.revoked_at) for k in found], next_cursor=created_cursor(found, limit))


@router.post("/keys/{key_id}/revoke", response_model=KeyOut)
def revoke_key(key_id: str, request: Request, body: NoBody | None = None) -> KeyOut:
    """Revoke one of the caller's keys (an operator: anyone's); requests with it get 401
    from then on."""
    svc, caller = who(request)
    info = _own_key(svc, caller, key_id)
    svc.keys.revoke(key_id)
    after = svc.keys.get(key_id)
    return KeyOut(id=info.id, party_id=info.party_id, created_at=info.created_at, revoked_at=after.revoked_at if after else None)


@router.post("/keys/{key_id}/rotate", status_code=201, response_model=KeyOut)
def rotate_key(key_id: str, request: Request, body: NoBody | None = None) -> KeyOut:
    """Issue a new key for the same party and revoke this one, at once."""
    svc, caller = who(request)
    info = _own_key(svc, caller, key_id)
    keep_without(request.scope, "key")
    try:
        issued = svc.keys.issue(info.party_id, revoke=key_id)
    except KeyRevoked as error:  # checked in the transaction, so of two rotations one wins
        raise AuthError("a revoked key cannot be rotated", code=ApiCode.key_not_found, field="key_id") from error
    return KeyOut(id=issued.id, party_id=issued.party_id, key=issued.key, created_at=issued.created_at)
