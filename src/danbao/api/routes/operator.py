"""The operator's audit, and the unauthenticated health check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from danbao.api.auth import who
from danbao.api.body import StrictJsonRoute
from danbao.api.models import AuditOut
from danbao.api.problems import ApiCode
from danbao.errors import DanbaoError
from danbao.ledger import JournalHead
from danbao.ledger import audit as audit_ledger
from danbao.ledger.audit import ANCHOR_CHARS_MAX
from danbao.trade.reconcile import reconcile

router = APIRouter(tags=["operator"], route_class=StrictJsonRoute)


Anchor = Annotated[
    str | None,
    Query(max_length=ANCHOR_CHARS_MAX, description="a `head` an earlier audit returned: the journal up to it must be unchanged"),
]


@router.get("/v1/audit", response_model=AuditOut)
def audit(request: Request, anchor: Anchor = None) -> AuditOut:
    """Re-derive the books: hash chain, totals, debits = credits, overdrafts, escrow vs trades.
    One at a time per server: another while one runs is 409 `audit_in_progress`.

    `head` is where the journal stands (`<entries>:<hash>`); kept where the database's
    writers cannot reach, it is passed back later as `anchor`, which proves the journal up
    to it unchanged (a chain rewritten from an edit onwards would otherwise pass)."""
    svc, _ = who(request, operator=True)
    anchored = None if anchor is None else JournalHead.parse(anchor)
    if not svc.auditing.acquire(blocking=False):
        raise DanbaoError("an audit is already running on this server: ask again once it has answered", code=ApiCode.audit_in_progress)
    try:
        books = audit_ledger(svc.db, anchored)
        trades = reconcile(svc.db)
    finally:
        svc.auditing.release()
    return AuditOut(
        ok=books.ok and trades.ok, violations=[*books.violations, *trades.violations], transfers_checked=books.transfers_checked,
        accounts_checked=books.accounts_checked, trades_checked=trades.trades_checked, escrow_by_currency=trades.escrow_by_currency,
        head=str(books.head),
    )


@router.get("/healthz")
def healthz(request: Request) -> dict[str, str]:
    """Whether the server answers and reaches its database (no key needed)."""
    svc = request.app.state.services
    svc.db.read_raw(lambda raw: raw.rows("SELECT 1"))
    return {"status": "ok"}
