"""One transition of one trade, applied atomically: money moved, row changed, event written.

An operation decides what a transition does (the money it moves, the figures it changes,
the status it reaches); `Step.finish` applies all of it inside the ledger transaction, and
owns the rules every transition shares: accounts exist before money moves, the moves are
one linked chain (all or nothing), the confirm clock stops and restarts with the status,
the worker's next job follows from the status, and the trade event is written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from danbao.errors import invariant
from danbao.ledger import NewTransfer, Result, TransferFlags
from danbao.ledger.transaction import LedgerTransaction
from danbao.money import format_amount
from danbao.trade import accounts, repository
from danbao.trade.config import TradeConfig
from danbao.trade.errors import TradeError
from danbao.trade.machine import CONFIRM_CLOCK_STOPPED, DUE, FINAL, Rule, arrive
from danbao.trade.model import Action, Model, Status, Trade, TradeEvent

MOVES_PER_STEP_MAX = 8
_ACCOUNT_MISSING = frozenset({Result.debit_account_not_found, Result.credit_account_not_found})


def ensure_accounts(txn: LedgerTransaction, account_ids: list[str]) -> None:
    wanted = sorted(set(account_ids))
    for result in txn.create_accounts([accounts.definition(a) for a in wanted]):
        invariant(result.result.succeeded, f"account {result.id}: {result.result.value}")


def move_money(txn: LedgerTransaction, transfers: list[NewTransfer]) -> None:
    """Commit `transfers` as one linked chain, or refuse with the ledger's own code."""
    invariant(len(transfers) <= MOVES_PER_STEP_MAX, "a step moves a bounded amount of money")
    if not transfers:
        return
    chain = [t._replace(flags=t.flags | int(TransferFlags.linked)) for t in transfers[:-1]] + [transfers[-1]]
    results = txn.create_transfers(chain)
    if any(r.result in _ACCOUNT_MISSING for r in results):
        # First use of an account: open it and try again. A refused chain wrote nothing,
        # and accounts that exist are the common case, so this costs nothing then.
        ensure_accounts(txn, [a for t in transfers for a in (t.debit_account_id, t.credit_account_id) if a])
        results = txn.create_transfers(chain)
    failed = [r for r in results if r.result != Result.ok]
    if failed:
        # The first cause, not the `linked_event_failed` echoes of it.
        cause = next((r for r in failed if r.result != Result.linked_event_failed), failed[0])
        invariant(cause.result != Result.exists, "trade transfer ids are fresh for every step")
        [refused] = [t for t in transfers if t.id == cause.id]
        raise TradeError(cause.result.value, _refusal(cause.result, refused))


# What a refusal says, in the caller's terms: the accounts and the amount, not the
# ledger's transfer id (the code says the rest).
_REFUSALS = {
    Result.insufficient_funds: "{debit} has less than {amount} available",
    Result.exceeds_debits: "{credit} cannot take {amount} more",
    Result.overflow: "{amount} more would overflow a total of {debit} or {credit}",
}


def _refusal(result: Result, t: NewTransfer) -> str:
    amount = f"{format_amount(t.amount, t.currency)} {t.currency}" if t.amount and t.currency else "the amount"
    template = _REFUSALS.get(result, "the ledger refused moving {amount} from {debit} to {credit}: {code}")
    return template.format(debit=t.debit_account_id, credit=t.credit_account_id, amount=amount, code=result.value)


@dataclass
class Step:
    txn: LedgerTransaction
    trade: Trade
    rule: Rule
    action: Action
    actor: str
    config: TradeConfig
    now: int
    moves: list[NewTransfer] = field(default_factory=list)
    changes: dict[str, Any] = field(default_factory=dict)
    amount: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        """A trade figure as this step leaves it."""
        return self.changes.get(name, getattr(self.trade, name))

    def move(self, name: str, debit: str, credit: str, amount: int, code: str) -> None:
        invariant(amount >= 0, "a move is never negative")
        if amount == 0:
            return  # e.g. a zero fee: nothing to move, nothing to journal
        trade = self.trade
        self.moves.append(
            NewTransfer(
                id=f"{trade.id}.{trade.version + 1}.{name}",
                debit_account_id=debit,
                credit_account_id=credit,
                amount=amount,
                currency=trade.currency,
                code=code,
                ref=trade.id,
            )
        )

    def set(self, **changes: Any) -> None:
        self.changes.update(changes)

    def add(self, name: str, amount: int) -> None:
        self.changes[name] = self.value(name) + amount

    def finish(self, to: Status) -> Trade:
        trade = self.trade
        arrive(self.rule, to)
        move_money(self.txn, self.moves)
        self.changes["status"] = to.value
        self._confirm_clock(Status(trade.status), to)
        self._next_due(to)
        repository.update_trade(self.txn.raw, trade, self.changes, self.now)
        courier = self.changes.get("courier_id", trade.courier_id)
        if courier is not None and trade.courier_id is None:  # assigned now: sees what came before too
            repository.feed_past_events(self.txn.raw, trade.id, courier)
        repository.insert_event(
            self.txn,
            TradeEvent(
                trade_id=trade.id,
                seq=trade.version + 1,
                at=self.now,
                actor=self.actor,
                action=self.action.value,
                from_status=trade.status,
                to_status=to.value,
                amount=self.amount,
                detail=json.dumps(self.detail, sort_keys=True, separators=(",", ":")) if self.detail else None,
            ),
            (trade.buyer_id, trade.seller_id, courier),
        )
        after = dataclasses.replace(trade, **self.changes, version=trade.version + 1, updated_at=self.now)
        invariant(after.refunded + after.released <= after.paid, "a trade never pays out more than was paid")
        return after

    def _confirm_clock(self, before: Status, to: Status) -> None:
        if Model(self.trade.model) != Model.escrow:
            return
        stopped, stops = before in CONFIRM_CLOCK_STOPPED, to in CONFIRM_CLOCK_STOPPED
        if stops and not stopped and self.value("confirm_by") is not None:
            self.set(confirm_left_ns=max(0, self.value("confirm_by") - self.now), confirm_by=None)
        elif stopped and not stops:
            # Runs again where it stopped, unless the trade is over (a decision, a refund).
            resumed = None if to in FINAL else self.now + self.value("confirm_left_ns")
            self.set(confirm_by=resumed, confirm_left_ns=None)

    def _next_due(self, to: Status) -> None:
        due = DUE.get((Model(self.trade.model), to))
        if due is None or (to == Status.collected and self.value("remit_late")):
            self.set(due_at=None, due_action=None)
            return
        action, column = due
        self.set(due_at=self.now if column is None else self.value(column), due_action=action.value)
