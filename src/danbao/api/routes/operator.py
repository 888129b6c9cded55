"""The operator's audit, and the unauthenticated health check."""

from __future__ import annotations

from fastapi import APIRouter, Request

from danbao.api.auth import who
from danbao.api.body import StrictJsonRoute
from danbao.api.models import AuditOut
from danbao.ledger import audit as audit_ledger
from danbao.trade.reconcile import reconcile

router = APIRouter(tags=["operator"], route_class=StrictJsonRoute)


@router.get("/v1/audit", response_model=AuditOut)
def audit(request: Request) -> AuditOut:
    """Re-derive the books: hash chain, totals, debits = credits, overdrafts, escrow vs trades."""
    svc, _ = who(request, operator=True)
    books = audit_ledger(svc.db)
    trades = reconcile(svc.db)
    return AuditOut(
        ok=books.ok and trades.ok, violations=[*books.violations, *trades.violations], transfers_checked=books.transfers_checked,
        accounts_checked=books.accounts_checked, trades_checked=trades.trades_checked, escrow_by_currency=trades.escrow_by_currency,
    )


@router.get("/healthz")
def healthz(request: Request) -> dict[str, str]:
    """Whether the server answers and reaches its database (no key needed)."""
    svc = request.app.state.services
    svc.db.read_raw(lambda raw: raw.rows("SELECT 1"))
    return {"status": "ok"}
