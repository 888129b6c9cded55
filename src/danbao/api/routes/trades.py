"""Trades of all three models and every operation of the trade engine, one POST each.

Who may do what is the trade engine's transition table: a party in the wrong role gets
403 (`role_forbidden`), on a trade not its own 404 (`trade_not_found`), in the wrong
state 409 (`trade_state_invalid`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.responses import Response

from danbao.api.auth import who, who_async
from danbao.api.body import StrictJsonRoute, documented, json_body
from danbao.api.direct import DirectRoute, Rendered
from danbao.api.idempotency import respond_inside
from danbao.api.models import (
    ArbitrateIn,
    ClaimIn,
    CollectIn,
    EventOut,
    EventPage,
    NoBody,
    RefundRequestIn,
    ShipIn,
    TradeIn,
    TradeOut,
    TradePage,
)
from danbao.api.routes.paging import PAGE_DEFAULT, CreatedCursor, Limit, created_cursor, cursor
from danbao.api.webhooks import event_id, event_type
from danbao.errors import invariant
from danbao.ledger import Ledger
from danbao.trade import Trade, TradeEvent
from danbao.trade.machine import SYSTEM, TABLE
from danbao.trade.model import SEQ_MAX, Action

router = APIRouter(prefix="/v1", tags=["trades"], route_class=StrictJsonRoute)
EventCursor = Annotated[str | None, Query(pattern="^[0-9]{1,20}:[A-Za-z0-9_.-]{1,64}:[0-9]{1,10}$", description="next_cursor of the page before")]


def trade_bytes(t: Trade) -> bytes:
    return trade_out(t).model_dump_json().encode()


async def _step(request: Request, ledger: Ledger, work: Callable[[Any], Trade], status_code: int = 200) -> Response:
    """Commit one trade step and answer with the trade; under an Idempotency-Key, the
    response is stored in the same commit as the step."""
    respond_inside(request.scope, status_code, trade_bytes)
    trade = await ledger.transaction_async(work)
    return Rendered(trade_bytes(trade), status_code=status_code)


def trade_out(t: Trade) -> TradeOut:
    return TradeOut(
        id=t.id, model=t.model, status=t.status, buyer_id=t.buyer_id, seller_id=t.seller_id, courier_id=t.courier_id,
        currency=t.currency, amount=t.amount, items=json.loads(t.items), paid=t.paid, refunded=t.refunded, released=t.released,
        fee=t.fee, compensated=t.compensated, refund_requested=t.refund_requested, collect_method=t.collect_method,
        confirm_extended=bool(t.confirm_extended), remit_late=bool(t.remit_late), pay_by=t.pay_by, ship_by=t.ship_by,
        confirm_by=t.confirm_by, respond_by=t.respond_by, claim_by=t.claim_by, remit_by=t.remit_by, version=t.version,
        created_at=t.created_at, updated_at=t.updated_at,
    )


def event_out(e: TradeEvent) -> EventOut:
    return EventOut(
        id=event_id(e), type=event_type(e), trade_id=e.trade_id, seq=e.seq, at=e.at, actor=e.actor, action=e.action,
        from_status=e.from_status, to_status=e.to_status, amount=e.amount, detail=json.loads(e.detail) if e.detail else None,
    )


def _post_direct(path: str, endpoint: Callable[..., Any], **options: Any) -> None:
    """A hot POST, called straight (`DirectRoute`): no parameters solved per request."""
    router.add_api_route(path, endpoint, methods=["POST"], response_model=TradeOut, route_class_override=DirectRoute, **options)


async def create_trade(request: Request) -> Response:
    """The caller (a buyer) orders from a seller, to settle by escrow, direct or cod."""
    svc, caller = await who_async(request)
    body = await json_body(request, TradeIn)
    work = svc.trade_works.create(caller.id, seller_id=body.seller_id, model=body.model, amount=body.amount, currency=body.currency.value, items=body.items)
    return await _step(request, svc.ledger, work, 201)


_post_direct("/trades", create_trade, status_code=201, openapi_extra=documented(TradeIn))


@router.get("/trades", response_model=TradePage)
def list_trades(request: Request, after: CreatedCursor = None, limit: Limit = PAGE_DEFAULT) -> TradePage:
    """The caller's trades (as buyer, seller or courier), oldest first. An arbiter finds
    the trades waiting on its decision at `/v1/disputes`."""
    svc, caller = who(request)
    found = svc.trades.of_party(caller.id, after=cursor(after, int, str), limit=limit)
    return TradePage(data=[trade_out(t) for t in found], next_cursor=created_cursor(found, limit))


@router.get("/disputes", response_model=TradePage)
def disputes(request: Request, after: CreatedCursor = None, limit: Limit = PAGE_DEFAULT) -> TradePage:
    """The arbiters' queue: every trade waiting on an arbiter's decision (an escrow trade
    in dispute, a direct trade with a claim), oldest first. Arbiters and operators only;
    anyone else gets 403 `role_forbidden`."""
    svc, caller = who(request)
    found = svc.trades.awaiting_arbiter(caller.id, after=cursor(after, int, str), limit=limit)
    return TradePage(data=[trade_out(t) for t in found], next_cursor=created_cursor(found, limit))


@router.get("/trades/{trade_id}", response_model=TradeOut)
def get_trade(trade_id: str, request: Request) -> TradeOut:
    """A trade the caller is party to (as buyer, seller or courier; an arbiter or operator
    sees any), with its figures and deadlines."""
    svc, caller = who(request)
    return trade_out(svc.trades.get(trade_id, caller.id))


@router.get("/trades/{trade_id}/events", response_model=EventPage)
def trade_events(trade_id: str, request: Request, after: int = Query(0, ge=0, le=SEQ_MAX), limit: Limit = PAGE_DEFAULT) -> EventPage:
    """A trade's transitions in order: who did what, when, from which status to which."""
    svc, caller = who(request)
    found = svc.trades.events(trade_id, caller.id, after_seq=after, limit=limit)
    return EventPage(data=[event_out(e) for e in found], next_cursor=str(found[-1].seq) if len(found) == limit else None)


@router.get("/events", response_model=EventPage)
def events(request: Request, after: EventCursor = None, limit: Limit = PAGE_DEFAULT) -> EventPage:
    """Events on the caller's trades, in time order (the same events webhooks deliver). An
    arbiter's or operator's are the events that put a trade in the arbiters' queue
    (`/v1/disputes`) or take it out."""
    svc, caller = who(request)
    found = svc.trades.events_of_party(caller.id, after=cursor(after, int, str, int), limit=limit)
    last = found[-1] if found else None
    return EventPage(data=[event_out(e) for e in found], next_cursor=f"{last.at}:{last.trade_id}:{last.seq}" if last and len(found) == limit else None)


def who_may(action: Action) -> str:
    """Who may take `action`, from which status, to which: the transition tables' rows,
    written out for the OpenAPI document so that it cannot drift from them."""
    rows = [
        f"- {model.value}: the {' or the '.join(sorted(rule.actors - {SYSTEM}))}, from `{status.value}` to "
        + " or ".join(f"`{to.value}`" for to in rule.to)
        for model, rules in TABLE.items()
        for (status, taken), rule in rules.items()
        if taken is action and rule.actors - {SYSTEM}
    ]
    invariant(bool(rows), f"{action.value}: an operation some party may take")
    return (
        "Who may, and from which status (the transition tables):\n\n" + "\n".join(rows) + "\n\n"
        "Another party to the trade gets 403 `role_forbidden`; the right party in another status "
        "409 `trade_state_invalid`; a caller neither party to the trade nor an arbiter or operator "
        "404 `trade_not_found`."
    )


def _operation(path: str, call: Callable[..., Trade], body_model: type[BaseModel] | None = None, summary: str = "", action: Action | None = None) -> None:
    """One POST per trade operation; the body is validated by `body_model` (or must be empty)."""
    # async: the operation's work joins the ledger's group commit straight from the event
    # loop (`transaction_async`), with no hop through the thread pool. The body is read by
    # `json_body`, not declared as a parameter: FastAPI's body handling cost more CPU.
    model = body_model or NoBody

    async def endpoint(trade_id: str, request: Request) -> Response:
        svc, caller = await who_async(request)
        body = await json_body(request, model)
        args = (body,) if body_model is not None else ()
        return await _step(request, svc.ledger, call(svc.trade_works, trade_id, caller.id, *args))

    endpoint.__name__ = path.replace("-", "_")
    description = who_may(action or Action(path.replace("-", "_")))
    _post_direct(f"/trades/{{trade_id}}/{path}", endpoint, summary=summary or path.replace("-", " "), description=description, openapi_extra=documented(model))


_operation("pay", lambda t, i, c: t.pay(i, c), summary="buyer pays (escrow: into escrow; direct: to the seller)")
_operation("cancel", lambda t, i, c: t.cancel(i, c))
_operation("refund", lambda t, i, c: t.refund(i, c), summary="before shipping, the whole amount back to the buyer")
_operation("ship", lambda t, i, c, b: t.ship(i, c, courier_id=b.courier_id), ShipIn)
_operation("confirm", lambda t, i, c: t.confirm(i, c), summary="the buyer confirms receipt; the seller is paid")
_operation("extend", lambda t, i, c: t.extend(i, c), summary="the buyer extends the confirm window once")
_operation("request-refund", lambda t, i, c, b: t.request_refund(i, c, b.amount), RefundRequestIn)
_operation("agree-refund", lambda t, i, c: t.agree_refund(i, c))
_operation("refuse-refund", lambda t, i, c: t.refuse_refund(i, c))
_operation("dispute", lambda t, i, c: t.dispute(i, c))
_operation("arbitrate", lambda t, i, c, b: t.arbitrate(i, c, b.decision, amount=b.amount), ArbitrateIn)
_operation("claim", lambda t, i, c, b: t.claim(i, c, reason=b.reason, evidence=b.evidence), ClaimIn)
_operation("settle-claim", lambda t, i, c: t.settle_claim(i, c))
_operation("uphold-claim", lambda t, i, c: t.uphold_claim(i, c))
_operation("reject-claim", lambda t, i, c: t.reject_claim(i, c))
_operation("collect", lambda t, i, c, b: t.collect(i, c, method=b.method), CollectIn)
_operation("refuse", lambda t, i, c: t.refuse(i, c), summary="the courier records a refusal at the door")
_operation("return", lambda t, i, c: t.return_goods(i, c), action=Action.return_goods)
_operation("remit", lambda t, i, c: t.remit(i, c))
_operation("settle", lambda t, i, c: t.settle(i, c))

