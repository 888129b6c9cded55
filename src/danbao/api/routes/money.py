"""Accounts, balances and money outside trades: wallet top-up and withdrawal, transfers
between parties, the direct seller's deposit and debt, the insurance pool."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from danbao.api.auth import who
from danbao.api.body import StrictJsonRoute
from danbao.api.direct import Rendered
from danbao.api.idempotency import respond_inside
from danbao.api.models import (
    AccountOut,
    AccountPage,
    BalanceOut,
    MoneyIn,
    MoveOut,
    TransferIn,
    TransferOut,
    TransferPage,
)
from danbao.api.problems import ApiCode
from danbao.api.routes.paging import PAGE_DEFAULT, Limit
from danbao.errors import DanbaoError
from danbao.ledger import Account
from danbao.ledger.model import TOTAL_MAX
from danbao.trade import Party

router = APIRouter(prefix="/v1", tags=["money"], route_class=StrictJsonRoute)


class AccountNotFound(DanbaoError):
    code = ApiCode.account_not_found.value


def account_out(a: Account) -> AccountOut:
    return AccountOut(
        id=a.id, currency=a.currency, kind=a.kind, balance=a.balance, available=a.available,
        debits_pending=a.debits_pending, debits_posted=a.debits_posted, credits_pending=a.credits_pending, credits_posted=a.credits_posted,
    )


def _own_account(svc, caller: Party, account_id: str) -> Account:  # type: ignore[no-untyped-def]
    account = svc.ledger.account(account_id)
    if account is None or (caller.role != "operator" and account.owner != caller.id):
        raise AccountNotFound(f"no account {account_id!r}", field="account_id")
    return account  # type: ignore[no-any-return]


@router.get("/accounts", response_model=AccountPage)
def list_accounts(request: Request) -> AccountPage:
    """The caller's own accounts (wallet, deposit, debt, cash), one per currency."""
    svc, caller = who(request)
    return AccountPage(data=[account_out(a) for a in svc.ledger.accounts_of(caller.id, limit=1000)])


@router.get("/accounts/{account_id}", response_model=AccountOut)
def get_account(account_id: str, request: Request) -> AccountOut:
    """One of the caller's accounts (an operator: any account) with its balance and totals."""
    svc, caller = who(request)
    return account_out(_own_account(svc, caller, account_id))


@router.get("/accounts/{account_id}/balance", response_model=BalanceOut)
def account_balance(account_id: str, request: Request, at: Annotated[int, Query(ge=0, le=TOTAL_MAX, description="nanoseconds since the epoch")]) -> BalanceOut:
    """The account's balance at a past moment: its totals just after its last entry then."""
    svc, caller = who(request)
    account = _own_account(svc, caller, account_id)
    b = svc.ledger.balance_at(account_id, at)
    return BalanceOut(
        account_id=account_id, currency=account.currency, at=at, balance=b.balance,
        debits_pending=b.debits_pending, debits_posted=b.debits_posted, credits_pending=b.credits_pending, credits_posted=b.credits_posted,
    )


@router.get("/accounts/{account_id}/transfers", response_model=TransferPage)
def account_transfers(account_id: str, request: Request, after: Annotated[str | None, Query(pattern="^[0-9]{1,20}$")] = None, limit: Limit = PAGE_DEFAULT) -> TransferPage:
    """The account's journal entries, oldest first."""
    svc, caller = who(request)
    _own_account(svc, caller, account_id)
    page = svc.ledger.transfers_of(account_id, after=after, limit=limit)
    return TransferPage(
        data=[TransferOut(id=t.id, timestamp=t.timestamp, debit_account_id=t.debit_account_id, credit_account_id=t.credit_account_id, amount=t.amount, currency=t.currency, code=t.code, ref=t.ref) for t in page.items],
        next_cursor=page.next_cursor,
    )


def _move(request: Request, body: MoneyIn, move: Callable[[], str]) -> Response:
    """Move the money and answer 201 with the transfer; under an Idempotency-Key, the
    response is stored in the same commit as the transfer."""

    def render(transfer_id: str) -> bytes:
        return MoveOut(transfer_id=transfer_id, amount=body.amount, currency=body.currency.value).model_dump_json().encode()

    respond_inside(request.scope, 201, render)
    return Rendered(render(move()), status_code=201)


@router.post("/wallet/top-up", status_code=201, response_model=MoveOut)
def top_up(body: MoneyIn, request: Request) -> Response:
    """Money in from the bank to the caller's wallet."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.top_up(caller.id, body.amount, body.currency.value))


@router.post("/wallet/withdraw", status_code=201, response_model=MoveOut)
def withdraw(body: MoneyIn, request: Request) -> Response:
    """Money out from the caller's wallet to the bank."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.withdraw(caller.id, body.amount, body.currency.value))


@router.post("/transfers", status_code=201, response_model=MoveOut)
def transfer(body: TransferIn, request: Request) -> Response:
    """Pay another party from the caller's wallet to theirs."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.send(caller.id, body.to_party_id, body.amount, body.currency.value))


@router.post("/deposit", status_code=201, response_model=MoveOut)
def deposit(body: MoneyIn, request: Request) -> Response:
    """A seller moves money from its wallet to its security deposit."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.deposit(caller.id, body.amount, body.currency.value))


@router.post("/deposit/withdraw", status_code=201, response_model=MoveOut)
def withdraw_deposit(body: MoneyIn, request: Request) -> Response:
    """A seller moves money from its security deposit back to its wallet; not while a claim
    may still arrive on one of its direct trades (409 `deposit_locked`)."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.withdraw_deposit(caller.id, body.amount, body.currency.value))


@router.post("/debt/repay", status_code=201, response_model=MoveOut)
def repay_debt(body: MoneyIn, request: Request) -> Response:
    """A seller pays its debt to the insurance pool from its wallet (never more than it owes)."""
    svc, caller = who(request)
    return _move(request, body, lambda: svc.trades.parties.repay_debt(caller.id, body.amount, body.currency.value))


@router.post("/insurance/fund", status_code=201, response_model=MoveOut)
def fund_insurance(body: MoneyIn, request: Request) -> Response:
    """The operator puts money into the insurance pool from the platform's bank account."""
    svc, caller = who(request, operator=True)
    return _move(request, body, lambda: svc.trades.parties.fund_insurance(caller.id, body.amount, body.currency.value))
