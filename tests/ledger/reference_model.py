"""A plain in-memory model of the ledger's rules, written independently of the engine.

Used by the stateful test as the oracle: the real ledger on a real database must agree
with it on every result code and every total.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from danbao.ledger import Result

NS = 1_000_000_000


@dataclass
class ModelAccount:
    currency: str
    no_overdraft: bool
    no_overcredit: bool = False
    dp: int = 0
    dpo: int = 0
    cp: int = 0
    cpo: int = 0


@dataclass
class ModelHold:
    debit: str
    credit: str
    amount: int
    currency: str
    expires_at: int | None
    state: str = "pending"


@dataclass
class ModelLedger:
    accounts: dict[str, ModelAccount] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    transfers: dict[str, tuple] = field(default_factory=dict)  # id -> the request's key fields
    last_ts: int = 0

    def stamp(self, now: int) -> int:
        self.last_ts = max(self.last_ts + 1, now)
        return self.last_ts

    def expire(self, now: int) -> None:
        for pid, h in sorted(self.holds.items(), key=lambda kv: (kv[1].expires_at or 0, kv[0])):
            if h.state == "pending" and h.expires_at is not None and h.expires_at <= now:
                h.state = "expired"
                self.accounts[h.debit].dp -= h.amount
                self.accounts[h.credit].cp -= h.amount
                self.stamp(now)

    def apply(self, kind: str, key: tuple, now: int) -> Result:
        """kind: plain, pending, post, void. key: the request's fields (for replays); a
        plain or pending key may end with `balancing` (move at most what the debit has)."""
        tid = key[0]
        if tid in self.transfers:
            return Result.exists if self.transfers[tid] == (kind, key) else Result.exists_with_different_fields
        if kind in ("plain", "pending"):
            _, debit, credit, amount, currency, timeout, _linked, *balancing = key
            dr, cr = self.accounts.get(debit), self.accounts.get(credit)
            if dr is None:
                return Result.debit_account_not_found
            if cr is None:
                return Result.credit_account_not_found
            if dr.currency != currency or cr.currency != currency:
                return Result.currency_mismatch
            if balancing and balancing[0]:
                amount = min(amount, dr.cpo - dr.dpo - dr.dp)
                if amount <= 0:
                    return Result.insufficient_funds
            if dr.no_overdraft and dr.dp + dr.dpo + amount > dr.cpo:
                return Result.insufficient_funds
            if cr.no_overcredit and cr.cp + cr.cpo + amount > cr.dpo:
                return Result.exceeds_debits
            ts = self.stamp(now)
            if kind == "pending":
                dr.dp += amount
                cr.cp += amount
                self.holds[tid] = ModelHold(debit, credit, amount, currency, ts + timeout * NS if timeout else None)
            else:
                dr.dpo += amount
                cr.cpo += amount
            self.transfers[tid] = (kind, key)
            return Result.ok
        _, pending_id, amount = key
        h = self.holds.get(pending_id)
        if h is None:
            return Result.pending_not_pending if pending_id in self.transfers else Result.pending_not_found
        if h.state == "posted":
            return Result.pending_already_posted
        if h.state == "voided":
            return Result.pending_already_voided
        if h.state == "expired" or (h.expires_at is not None and h.expires_at <= now):
            return Result.pending_expired
        post_amount = h.amount if amount is None else amount
        if post_amount > h.amount:
            return Result.amount_exceeds_pending
        if kind == "void" and post_amount != h.amount:
            return Result.pending_mismatch
        dr, cr = self.accounts[h.debit], self.accounts[h.credit]
        dr.dp -= h.amount
        cr.cp -= h.amount
        if kind == "post":
            dr.dpo += post_amount
            cr.cpo += post_amount
        h.state = "posted" if kind == "post" else "voided"
        self.stamp(now)
        self.transfers[tid] = (kind, key)
        return Result.ok

    def snapshot(self) -> dict:
        return {k: (a.dp, a.dpo, a.cp, a.cpo) for k, a in self.accounts.items()}

    def copy(self) -> ModelLedger:
        import copy

        return copy.deepcopy(self)
