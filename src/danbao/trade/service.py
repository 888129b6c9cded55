"""The trade engine: every operation on a trade, for every party, in all three models.

Each operation is one ledger transaction: load the trade, find the actor's part in it,
ask the transition table (`machine.authorise`), check the operation's own guards, decide
the money and figures, and let `Step.finish` apply them. A refusal raises `TradeError`
before anything is written, so it changes nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from danbao.errors import invariant
from danbao.ids import Ids
from danbao.ledger import Ledger, ReadCode
from danbao.ledger.transaction import LedgerTransaction
from danbao.text import storable
from danbao.trade import accounts, repository
from danbao.trade.config import TradeConfig, share_of
from danbao.trade.errors import TradeCode, TradeError
from danbao.trade.machine import OVERSEERS, SYSTEM, authorise
from danbao.trade.model import (
    EVENTS_PER_PAGE_MAX,
    EVIDENCE_CHARS_MAX,
    ITEMS_BYTES_MAX,
    SEQ_MAX,
    SYSTEM_ACTOR,
    Action,
    ClaimReason,
    CollectMethod,
    Decision,
    Model,
    Role,
    Status,
    Trade,
    TradeEvent,
)
from danbao.trade.parties import Parties, balance, check_amount, check_currency, load_parties, load_party
from danbao.trade.step import Step

NS = 1_000_000_000
TRADES_PER_PAGE_MAX = 1000

Decide = Callable[[Step], Trade]


class Trades:
    """Trades on a ledger. `parties` handles sign-up and money outside trades."""

    def __init__(self, ledger: Ledger, config: TradeConfig | None = None, ids: Ids | None = None):
        self.ledger = ledger
        self.config = config or TradeConfig()
        self.ids = ids or Ids()
        self.parties = Parties(ledger, self.config, self.ids)
        self._run: Callable[[Callable[[LedgerTransaction], Any]], Any] = ledger.transaction

    def as_works(self) -> Trades:
        """The same service, whose trade operations return their unit of work instead of
        running it: for callers that run works their own way (the async HTTP API hands
        them to `Ledger.transaction_async`). Input checks made before the work still raise."""
        view = copy.copy(self)
        view._run = lambda work: work
        return view

    # -- creating and reading ---------------------------------------------------------

    def create(self, buyer_id: str, *, seller_id: str, model: str, amount: int, currency: str, items: object = None) -> Trade:
        """The buyer places an order with a seller, to be settled by `model`."""
        if model not in Model.__members__:
            raise TradeError(TradeCode.model_unknown, f"model must be one of {', '.join(Model.__members__)}", field="model")
        model = Model(model).value  # a `Model` member is taken too; the trade keeps the plain name
        check_amount(amount)
        currency = check_currency(currency)
        items_json = _items(items)
        trade_id = self.ids.new("t")
        config = self.config

        def work(txn: LedgerTransaction) -> Trade:
            load_parties(txn.raw, [(buyer_id, Role.buyer, "buyer_id"), (seller_id, Role.seller, "seller_id")], acting="buyer_id")
            if model == Model.direct:
                self._check_may_sell_direct(txn, seller_id, currency)
            now = txn.now_ns
            pay_by = now + config.pay_window_seconds * NS if model != Model.cod else None
            trade = Trade(
                id=trade_id, model=model, status=Status.created.value, buyer_id=buyer_id, seller_id=seller_id,
                courier_id=None, currency=currency, amount=amount, items=items_json, paid=0, refunded=0,
                released=0, fee=0, compensated=0, refund_requested=None, collect_method=None,
                confirm_extended=0, remit_late=0, pay_by=pay_by, ship_by=None, confirm_by=None,
                confirm_left_ns=None, respond_by=None, claim_by=None, remit_by=None,
                due_at=pay_by, due_action=Action.close.value if pay_by is not None else None,
                version=1, created_at=now, updated_at=now,
            )
            repository.insert_trade(txn.raw, trade)
            created = TradeEvent(trade_id, 1, now, buyer_id, Action.create.value, "none", Status.created.value, amount, None)
            repository.insert_event(txn, created, (buyer_id, seller_id))
            return trade

        return self._run(work)

    def get(self, trade_id: str, party_id: str) -> Trade:
        """The trade, if `party_id` may see it (its parties, any arbiter or operator)."""
        return self.ledger.db.read_raw(lambda raw: self._visible(raw, trade_id, party_id)[0])

    def events(self, trade_id: str, party_id: str, *, after_seq: int = 0, limit: int = 100) -> list[TradeEvent]:
        limit = _limit(limit, EVENTS_PER_PAGE_MAX)
        if type(after_seq) is not int or not 0 <= after_seq <= SEQ_MAX:
            raise TradeError(ReadCode.cursor_invalid, f"after_seq must be 0 to {SEQ_MAX}", field="after_seq")

        def read(raw) -> list[TradeEvent]:  # type: ignore[no-untyped-def]
            self._visible(raw, trade_id, party_id)
            return repository.events(raw, trade_id, after_seq=after_seq, limit=limit)

        return self.ledger.db.read_raw(read)

    def events_of_party(self, party_id: str, *, after: tuple[int, str, int] | None = None, limit: int = 100) -> list[TradeEvent]:
        """Events on every trade the party is part of, in time order. Arbiters and
        operators are part of none: theirs are the events that put a trade in the
        arbiters' queue or take it out."""
        limit = _limit(limit, EVENTS_PER_PAGE_MAX)

        def read(raw) -> list[TradeEvent]:  # type: ignore[no-untyped-def]
            feed = repository.ARBITERS_FEED if _overseer_role(raw, party_id) is not None else party_id
            return repository.events_of_party(raw, feed, after=after, limit=limit)

        return self.ledger.db.read_raw(read)

    def of_party(self, party_id: str, *, after: tuple[int, str] | None = None, limit: int = 100) -> list[Trade]:
        limit = _limit(limit, TRADES_PER_PAGE_MAX)
        return self.ledger.db.read_raw(lambda raw: repository.trades_of(raw, party_id, after=after, limit=limit))

    def awaiting_arbiter(self, party_id: str, *, after: tuple[int, str] | None = None, limit: int = 100) -> list[Trade]:
        """The arbiters' queue: escrow disputes and direct claims waiting on a decision,
        oldest first. For arbiters, who decide them, and operators, who see every trade;
        anyone else is `role_forbidden`."""
        limit = _limit(limit, TRADES_PER_PAGE_MAX)

        def read(raw) -> list[Trade]:  # type: ignore[no-untyped-def]
            if _overseer_role(raw, party_id) is None:
                raise TradeError(TradeCode.role_forbidden, "only an arbiter or an operator sees the trades waiting on an arbiter")
            return repository.trades_awaiting_arbiter(raw, after=after, limit=limit)

        return self.ledger.db.read_raw(read)

    def claims_rejected(self, buyer_id: str, *, limit: int = 100) -> list[TradeEvent]:
        """Claims an arbiter rejected as unfounded, by the buyer who made them (credit reads these)."""
        limit = _limit(limit, EVENTS_PER_PAGE_MAX)
        return self.ledger.db.read_raw(lambda raw: repository.claims_rejected(raw, buyer_id, limit=limit))

    # -- escrow -----------------------------------------------------------------------

    def pay(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            t, c = step.trade, self.config
            if t.model == Model.direct:
                self._check_may_sell_direct(step.txn, t.seller_id, t.currency)
                premium = share_of(t.amount, c.insurance_rate_bp)
                step.move("pay", _wallet(t.buyer_id, t), _wallet(t.seller_id, t), t.amount, "trade.pay")
                step.move("premium", _wallet(t.seller_id, t), accounts.platform("insurance", t.currency), premium, "insurance.premium")
                step.set(paid=t.amount, released=t.amount, fee=premium, claim_by=step.now + c.claim_window_seconds * NS)
            else:
                step.move("pay", _wallet(t.buyer_id, t), _escrow(t), t.amount, "trade.pay")
                step.set(paid=t.amount, ship_by=step.now + c.ship_window_seconds * NS)
            step.amount = t.amount
            return step.finish(Status.paid)

        return self._act(trade_id, actor_id, Action.pay, decide)

    def cancel(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            t = step.trade
            if t.status == Status.created:
                return step.finish(Status.closed)
            if step.actor == t.buyer_id and step.now < t.ship_by:
                raise TradeError(TradeCode.ship_window_open, "the seller still has time to ship; ask for a refund instead")
            self._refund_held(step)
            return step.finish(Status.refunded)

        return self._act(trade_id, actor_id, Action.cancel, decide)

    def refund(self, trade_id: str, actor_id: str) -> Trade:
        """Before shipping: the whole amount back to the buyer at once."""

        def decide(step: Step) -> Trade:
            self._refund_held(step)
            return step.finish(Status.refunded)

        return self._act(trade_id, actor_id, Action.refund, decide)

    def ship(self, trade_id: str, actor_id: str, *, courier_id: str | None = None) -> Trade:
        def decide(step: Step) -> Trade:
            t, c = step.trade, self.config
            if t.model == Model.cod:
                self._assign_courier(step, courier_id)
            else:
                step.set(confirm_by=step.now + c.confirm_window_seconds * NS)
            return step.finish(Status.shipped)

        return self._act(trade_id, actor_id, Action.ship, decide)

    def confirm(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            self._release_held(step)
            return step.finish(Status.completed)

        return self._act(trade_id, actor_id, Action.confirm, decide)

    def extend(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            t = step.trade
            if t.confirm_extended:
                raise TradeError(TradeCode.extension_used, "the confirm window was already extended once")
            step.set(confirm_extended=1, confirm_by=t.confirm_by + self.config.confirm_extension_seconds * NS)
            return step.finish(Status.shipped)

        return self._act(trade_id, actor_id, Action.extend, decide)

    def request_refund(self, trade_id: str, actor_id: str, amount: int) -> Trade:
        """After shipping: ask for all or part of what is still held back."""

        def decide(step: Step) -> Trade:
            check_amount(amount)
            held = step.trade.open_in_escrow
            if amount > held:
                raise TradeError(TradeCode.refund_exceeds_paid, f"at most {held} can still be refunded", field="amount")
            step.amount = amount
            step.set(refund_requested=amount, respond_by=step.now + self.config.refund_response_seconds * NS)
            return step.finish(Status.refund_requested)

        return self._act(trade_id, actor_id, Action.request_refund, decide)

    def agree_refund(self, trade_id: str, actor_id: str) -> Trade:
        return self._act(trade_id, actor_id, Action.agree_refund, self._pay_requested_refund)

    def refuse_refund(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            step.set(respond_by=None)
            return step.finish(Status.refund_refused)

        return self._act(trade_id, actor_id, Action.refuse_refund, decide)

    def dispute(self, trade_id: str, actor_id: str) -> Trade:
        return self._act(trade_id, actor_id, Action.dispute, lambda step: step.finish(Status.disputed))

    def arbitrate(self, trade_id: str, actor_id: str, decision: str, *, amount: int | None = None) -> Trade:
        """An arbiter decides a dispute: all to the seller, all back, or part back."""

        def decide(step: Step) -> Trade:
            if decision not in Decision.__members__:
                raise TradeError(TradeCode.decision_invalid, f"decision must be one of {', '.join(Decision.__members__)}", field="decision")
            step.detail["decision"] = decision
            held = step.trade.open_in_escrow
            if decision == Decision.refund_full:
                self._refund_held(step)
                return step.finish(Status.refunded)
            if decision == Decision.refund_partial:
                check_amount(amount)
                if amount >= held:  # type: ignore[operator]
                    raise TradeError(TradeCode.refund_exceeds_paid, f"a partial refund is less than the {held} held", field="amount")
                self._refund(step, amount)  # type: ignore[arg-type]
            self._release_held(step)
            return step.finish(Status.completed)

        return self._act(trade_id, actor_id, Action.arbitrate, decide)

    # -- direct -----------------------------------------------------------------------

    def claim(self, trade_id: str, actor_id: str, *, reason: str, evidence: str) -> Trade:
        def decide(step: Step) -> Trade:
            if reason not in ClaimReason.__members__:
                raise TradeError(TradeCode.claim_reason_invalid, f"reason must be one of {', '.join(ClaimReason.__members__)}", field="reason")
            if not storable(evidence) or not 0 < len(evidence.strip()) <= EVIDENCE_CHARS_MAX:
                raise TradeError(TradeCode.evidence_invalid, f"evidence is 1 to {EVIDENCE_CHARS_MAX} characters", field="evidence")
            if step.now >= step.trade.claim_by:
                raise TradeError(TradeCode.claim_window_closed, "the claim window has closed")
            step.detail.update(reason=reason, evidence=evidence.strip())
            return step.finish(Status.claimed)

        return self._act(trade_id, actor_id, Action.claim, decide)

    def settle_claim(self, trade_id: str, actor_id: str) -> Trade:
        """The seller refunds the price rather than face the arbiter."""

        def decide(step: Step) -> Trade:
            t = step.trade
            step.move("refund", _wallet(t.seller_id, t), _wallet(t.buyer_id, t), t.amount, "claim.refund")
            step.set(refunded=t.amount, released=0)
            step.amount = t.amount
            return step.finish(Status.refunded)

        return self._act(trade_id, actor_id, Action.settle_claim, decide)

    def uphold_claim(self, trade_id: str, actor_id: str) -> Trade:
        """Compensation = multiple x price: from the seller's deposit first, then the pool,
        which the seller then owes."""

        def decide(step: Step) -> Trade:
            t = step.trade
            owed = self.config.compensation_multiple * t.amount
            deposit = accounts.owned(t.seller_id, "deposit", t.currency)
            from_deposit = min(owed, max(0, balance(step.txn, deposit)))
            from_pool = owed - from_deposit
            pool = accounts.platform("insurance", t.currency)
            step.move("deposit", deposit, _wallet(t.buyer_id, t), from_deposit, "claim.compensation")
            step.move("pool", pool, _wallet(t.buyer_id, t), from_pool, "claim.compensation")
            step.move("debt", accounts.owned(t.seller_id, "debt", t.currency), pool, from_pool, "claim.debt")
            step.set(compensated=owed)
            step.amount = owed
            step.detail.update(from_deposit=from_deposit, from_pool=from_pool)
            return step.finish(Status.compensated)

        return self._act(trade_id, actor_id, Action.uphold_claim, decide)

    def reject_claim(self, trade_id: str, actor_id: str) -> Trade:
        return self._act(trade_id, actor_id, Action.reject_claim, lambda step: step.finish(Status.completed))

    # -- cash on delivery -------------------------------------------------------------

    def collect(self, trade_id: str, actor_id: str, *, method: str) -> Trade:
        def decide(step: Step) -> Trade:
            t = step.trade
            if method not in CollectMethod.__members__:
                raise TradeError(TradeCode.collect_method_invalid, "method must be cash or card", field="method")
            step.set(collect_method=method, paid=t.amount)
            step.amount = t.amount
            if method == CollectMethod.card:
                # The card acquirer pays the platform directly: nothing for the courier to remit.
                step.move("collect", accounts.platform("bank", t.currency), _escrow(t), t.amount, "cod.collect")
                return step.finish(Status.remitted)
            step.move("collect", _cash(t), _escrow(t), t.amount, "cod.collect")
            step.set(remit_by=step.now + self.config.remit_window_seconds * NS)
            return step.finish(Status.collected)

        return self._act(trade_id, actor_id, Action.collect, decide)

    def remit(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            t = step.trade
            step.move("remit", accounts.platform("bank", t.currency), _cash(t), t.amount, "cod.remit")
            step.amount = t.amount
            return step.finish(Status.remitted)

        return self._act(trade_id, actor_id, Action.remit, decide)

    def settle(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            self._release_held(step)
            return step.finish(Status.settled)

        return self._act(trade_id, actor_id, Action.settle, decide)

    def refuse(self, trade_id: str, actor_id: str) -> Trade:
        return self._act(trade_id, actor_id, Action.refuse, lambda step: step.finish(Status.refused))

    def return_goods(self, trade_id: str, actor_id: str) -> Trade:
        def decide(step: Step) -> Trade:
            t, c = step.trade, self.config
            payer = t.seller_id if c.return_fee_payer == Role.seller else t.buyer_id
            step.move("return_fee", _wallet(payer, t), accounts.platform("fees", t.currency), c.return_fee, "cod.return_fee")
            step.amount = c.return_fee
            step.detail["payer"] = payer
            return step.finish(Status.returned)

        return self._act(trade_id, actor_id, Action.return_goods, decide)

    # -- the worker's timeouts ----------------------------------------------------------

    def run_due_one(self, trade_id: str) -> Trade | None:
        """Run the trade's due job if it is still due; None when there is nothing to do."""

        def work(txn: LedgerTransaction) -> Trade | None:
            trade = repository.trade(txn.raw, trade_id)
            if trade is None or trade.due_at is None or trade.due_at > txn.now_ns:
                return None  # done by someone else meanwhile, or moved on
            action = Action(trade.due_action)
            rule = authorise(Model(trade.model), Status(trade.status), action, SYSTEM)
            step = Step(txn, trade, rule, action, SYSTEM_ACTOR, self.config, txn.now_ns)
            return self._timeouts[action](self, step)

        return self._run(work)

    def _close(self, step: Step) -> Trade:
        return step.finish(Status.closed)

    def _auto_confirm(self, step: Step) -> Trade:
        self._release_held(step)
        return step.finish(Status.completed)

    def _claim_window_end(self, step: Step) -> Trade:
        return step.finish(Status.completed)

    def _flag_late(self, step: Step) -> Trade:
        repository.count_late_remittance(step.txn.raw, step.trade.courier_id)  # type: ignore[arg-type]
        step.set(remit_late=1)
        return step.finish(Status.collected)

    def _settle(self, step: Step) -> Trade:
        self._release_held(step)
        return step.finish(Status.settled)

    _timeouts: dict[Action, Callable[[Trades, Step], Trade]] = {
        Action.close: _close,
        Action.auto_confirm: _auto_confirm,
        Action.refund_timeout: lambda self, step: self._pay_requested_refund(step),
        Action.claim_window_end: _claim_window_end,
        Action.flag_late: _flag_late,
        Action.settle: _settle,
    }

    # -- shared pieces ----------------------------------------------------------------

    def _act(self, trade_id: str, actor_id: str, action: Action, decide: Decide) -> Trade:
        def work(txn: LedgerTransaction) -> Trade:
            trade, actor = self._visible(txn.raw, trade_id, actor_id)
            rule = authorise(Model(trade.model), Status(trade.status), action, actor)
            return decide(Step(txn, trade, rule, action, actor_id, self.config, txn.now_ns))

        return self._run(work)

    @staticmethod
    def _visible(raw, trade_id: str, party_id: str) -> tuple[Trade, str]:  # type: ignore[no-untyped-def]
        """The trade and the part `party_id` plays in it; someone else's trade is not found."""
        trade = repository.trade(raw, trade_id)
        part = trade.party_role(party_id) if trade is not None else None
        if trade is not None and part is None:
            part = _overseer_role(raw, party_id)
        if trade is None or part is None:
            raise TradeError(TradeCode.trade_not_found, f"no trade {trade_id!r}", field="trade_id")
        return trade, part

    def _check_may_sell_direct(self, txn: LedgerTransaction, seller_id: str, currency: str) -> None:
        deposit = accounts.owned(seller_id, "deposit", currency)
        debt = accounts.owned(seller_id, "debt", currency)
        found = txn.accounts([deposit, debt])
        if debt in found and found[debt].balance < 0:
            raise TradeError(TradeCode.seller_in_debt, "the seller owes the insurance pool and cannot sell direct")
        held = found[deposit].balance if deposit in found else 0
        if held < self.config.deposit_minimum:
            raise TradeError(TradeCode.deposit_below_minimum, f"direct selling needs a deposit of {self.config.deposit_minimum}")

    def _assign_courier(self, step: Step, courier_id: str | None) -> None:
        t = step.trade
        if courier_id is None:
            raise TradeError(TradeCode.courier_required, "a cash-on-delivery trade ships with a courier", field="courier_id")
        courier = load_party(step.txn.raw, courier_id, role=Role.courier, field="courier_id")
        carrying = -balance(step.txn, accounts.owned(courier_id, "cash", t.currency))
        out = repository.courier_uncollected(step.txn.raw, courier_id, t.currency)
        invariant(courier.cash_limit is not None, "couriers have a cash limit")
        if carrying + out + t.amount > courier.cash_limit:  # type: ignore[operator]
            raise TradeError(TradeCode.courier_cash_limit, f"{courier_id} would carry more than its limit of {courier.cash_limit}", field="courier_id")
        step.set(courier_id=courier_id)

    def _refund(self, step: Step, amount: int) -> None:
        t = step.trade
        step.move("refund", _escrow(t), _wallet(t.buyer_id, t), amount, "trade.refund")
        step.add("refunded", amount)
        step.amount = amount

    def _refund_held(self, step: Step) -> None:
        self._refund(step, step.trade.paid - step.value("refunded") - step.value("released"))

    def _release_held(self, step: Step) -> None:
        """Pay the seller what is still held, less the platform fee on it."""
        t = step.trade
        held = t.paid - step.value("refunded") - step.value("released")
        invariant(held >= 0, "never release more than is held")
        fee = share_of(held, self.config.fee_rate_bp)
        step.move("release", _escrow(t), _wallet(t.seller_id, t), held - fee, "trade.release")
        step.move("fee", _escrow(t), accounts.platform("fees", t.currency), fee, "fee")
        step.add("released", held)
        step.add("fee", fee)
        step.detail.setdefault("released", held)

    def _pay_requested_refund(self, step: Step) -> Trade:
        asked = step.trade.refund_requested
        invariant(asked is not None and asked > 0, "a refund request has an amount")
        self._refund(step, asked)  # type: ignore[arg-type]
        step.set(refund_requested=None, respond_by=None)
        fully = step.value("refunded") == step.trade.paid
        return step.finish(Status.refunded if fully else Status.shipped)


def _overseer_role(raw, party_id: str) -> str | None:  # type: ignore[no-untyped-def]
    """`party_id`'s role if it oversees every trade (an arbiter or an operator), else None."""
    party = repository.parties(raw, [party_id]).get(party_id) if isinstance(party_id, str) else None
    return party.role if party is not None and party.role in OVERSEERS else None


def _wallet(party_id: str, trade: Trade) -> str:
    return accounts.owned(party_id, "wallet", trade.currency)


def _escrow(trade: Trade) -> str:
    return accounts.platform("escrow", trade.currency)


def _cash(trade: Trade) -> str:
    invariant(trade.courier_id is not None, "a collected cod trade has a courier")
    return accounts.owned(trade.courier_id, "cash", trade.currency)  # type: ignore[arg-type]


def _items(items: object) -> str:
    try:
        text = json.dumps(items if items is not None else [], sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
        # Encoding refuses lone surrogates: stored, they could never be sent back as JSON.
        size = len(text.encode())
    except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        raise TradeError(TradeCode.items_invalid, "items must be plain JSON", field="items") from error
    if size > ITEMS_BYTES_MAX:
        raise TradeError(TradeCode.items_invalid, f"items are at most {ITEMS_BYTES_MAX} bytes of JSON", field="items")
    return text


def _limit(limit: int, most: int) -> int:
    if type(limit) is not int or not 1 <= limit <= most:
        raise TradeError(ReadCode.limit_invalid, f"limit must be between 1 and {most}", field="limit")
    return limit
