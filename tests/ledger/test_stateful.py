"""Random sequences of ledger operations agree with a plain in-memory model, on both backends.

Accounts (`no_overdraft` and `no_overcredit` among them), transfers (balancing among them),
holds, posts, voids, expiries (by moving the clock), linked chains and replays, by two ledgers on one database taking turns (as two processes would): after every
step each result code and every account's four totals must equal the model's, and at the
end the audit passes.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from danbao.clock import ManualClock
from danbao.ledger import AccountFlags, Ledger, NewAccount, NewTransfer, Result, TransferFlags, audit
from tests.ledger.reference_model import ModelAccount, ModelLedger

ACCOUNT_NAMES = ["a", "b", "c", "d", "eur", "cap", "late"]
OPENED_AT_START = {"a": ("USD", True), "b": ("USD", True), "c": ("USD", False), "d": ("USD", True), "eur": ("EUR", True), "cap": ("USD", False)}
NO_OVERCREDIT = {"cap"}  # credited no more than it was debited (as a seller's debt is)
FLAG = {"plain": 0, "pending": int(TransferFlags.pending), "post": int(TransferFlags.post_pending), "void": int(TransferFlags.void_pending)}


def make_machine(database_factory):
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.db, self.cleanup = database_factory()
            self.clock = ManualClock()
            # Two writers on one database: each plans on the totals it committed until the
            # other moves the head (ledger/known.py).
            self.writers = (Ledger(self.db, self.clock), Ledger(self.db, self.clock))
            self.ledger = self.writers[0]
            self.model = ModelLedger()
            self.ids = itertools.count()
            self.chain_of: dict[str, tuple[str, ...]] = {}  # member id -> the chain's ids
            self.sent: dict[str, tuple] = {}

        def teardown(self) -> None:
            for writer in self.writers:
                writer.close()
            report = audit(self.db)
            self.db.dispose()
            self.cleanup()
            assert report.ok, report.violations

        @initialize()
        def open_and_fund(self) -> None:
            self.ledger.create_accounts([NewAccount("bank", "USD", "bank_clearing")])
            self.model.accounts["bank"] = ModelAccount("USD", False)
            for name, (currency, guarded) in OPENED_AT_START.items():
                self.open_account(name, currency, guarded)
            for name in ("a", "b", "c", "d"):
                t, key = self._plain("plain", "bank", name, 600, "USD", 0)
                self._check([t], [key])

        @rule(name=st.sampled_from(ACCOUNT_NAMES), currency=st.sampled_from(["USD", "USD", "EUR"]), guarded=st.booleans())
        def open_account_rule(self, name, currency, guarded):
            self.open_account(name, currency, guarded)

        def open_account(self, name, currency, guarded):
            capped = name in NO_OVERCREDIT
            guarded = guarded and not capped  # the two flags exclude each other (flags_invalid)
            flags = (int(AccountFlags.no_overdraft) if guarded else 0) | (int(AccountFlags.no_overcredit) if capped else 0)
            [r] = self.ledger.create_accounts([NewAccount(name, currency, "wallet", flags=flags)])
            if name in self.model.accounts:
                assert r.result in (Result.exists, Result.exists_with_different_fields)
            else:
                assert r.result is Result.ok
                self.model.accounts[name] = ModelAccount(currency, guarded, capped)

        def _new_id(self) -> str:
            return f"t{next(self.ids)}"

        def _plain(self, kind, debit, credit, amount, currency, timeout, linked=False, balancing=False):
            tid = self._new_id()
            key = (tid, debit, credit, amount, currency, timeout, linked, balancing)
            return self._rebuild(kind, key), (kind, key)

        def _check(self, transfers, keys):
            now = self.clock.now_ns()
            self.model.expire(now)
            expected = self._expected(keys, now)
            got = [r.result for r in self.ledger.create_transfers(transfers)]
            assert got == expected
            assert self._totals() == self.model.snapshot()

        def _expected(self, keys, now):
            linked = len(keys) > 1
            if not linked:
                kind, key = keys[0]
                return [self.model.apply(kind, key, now)]
            trial = self.model.copy()
            results = []
            for kind, key in keys:
                r = trial.apply(kind, key, now)
                results.append(r)
                if not r.succeeded:
                    failed = len(results) - 1
                    return [r if i == failed else Result.linked_event_failed for i in range(len(keys))]
            self.model.__dict__.update(trial.__dict__)
            return results

        def _totals(self):
            return {a.id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) for a in self.ledger.accounts(list(self.model.accounts))}

        @rule(debit=st.sampled_from(["bank", *ACCOUNT_NAMES]), credit=st.sampled_from(ACCOUNT_NAMES),
              amount=st.integers(1, 500), currency=st.sampled_from(["USD", "USD", "USD", "EUR"]), balancing=st.booleans())
        def transfer(self, debit, credit, amount, currency, balancing):
            if debit == credit:
                return
            t, key = self._plain("plain", debit, credit, amount, currency, 0, balancing=balancing)
            self._check([t], [key])

        @rule(debit=st.sampled_from(ACCOUNT_NAMES), credit=st.sampled_from(ACCOUNT_NAMES),
              amount=st.integers(1, 300), timeout=st.sampled_from([0, 10, 60]))
        def hold(self, debit, credit, amount, timeout):
            if debit == credit:
                return
            t, key = self._plain("pending", debit, credit, amount, "USD", timeout)
            self._check([t], [key])

        @precondition(lambda self: self.model.holds)
        @rule(data=st.data(), post=st.booleans(), partial=st.booleans())
        def resolve(self, data, post, partial):
            pending_id = data.draw(st.sampled_from(sorted(self.model.holds)))
            held = self.model.holds[pending_id].amount
            amount = data.draw(st.one_of(st.integers(1, held), st.just(held + 1))) if partial and post else None
            kind = "post" if post else "void"
            tid = self._new_id()
            t = NewTransfer(tid, amount=amount, flags=FLAG[kind], pending_id=pending_id)
            self._check([t], [(kind, (tid, pending_id, amount))])

        def _rebuild(self, kind, key):
            if kind in ("plain", "pending"):
                tid, debit, credit, amount, currency, timeout, linked, balancing = key
                flags = FLAG[kind] | (int(TransferFlags.linked) if linked else 0) | (int(TransferFlags.balancing) if balancing else 0)
                return NewTransfer(tid, debit, credit, amount, currency, flags=flags, timeout_seconds=timeout)
            tid, pending_id, amount = key
            return NewTransfer(tid, amount=amount, flags=FLAG[kind], pending_id=pending_id)

        @precondition(lambda self: self.model.transfers)
        @rule(data=st.data())
        def replay(self, data):
            """A retried request: a single transfer, or a whole chain as it was sent."""
            singles = sorted(t for t, (kind, key) in self.model.transfers.items() if t not in self.chain_of)
            options = singles + sorted({self.chain_of[t] for t in self.chain_of})
            choice = data.draw(st.sampled_from(options))
            ids = list(choice) if isinstance(choice, tuple) else [choice]
            keys = [self.model.transfers.get(i) or self.sent[i] for i in ids]
            self._check([self._rebuild(kind, key) for kind, key in keys], keys)

        @rule(legs=st.lists(st.tuples(st.sampled_from(["bank", *ACCOUNT_NAMES]), st.sampled_from(ACCOUNT_NAMES), st.integers(1, 400)), min_size=2, max_size=3))
        def linked_chain(self, legs):
            transfers, keys = [], []
            for i, (debit, credit, amount) in enumerate(legs):
                if debit == credit:
                    return
                t, key = self._plain("plain", debit, credit, amount, "USD", 0, linked=i < len(legs) - 1)
                transfers.append(t)
                keys.append(key)
            chain = tuple(t.id for t in transfers)
            for t, key in zip(transfers, keys):
                self.chain_of[t.id] = chain
                self.sent[t.id] = key
            self._check(transfers, keys)

        @rule(data=st.data(), steps=st.integers(2, 5))
        def in_one_transaction(self, data, steps):
            """Several batches in one `Ledger.transaction`, each seeing the ones before it
            (their entries, holds and totals) before anything is written."""
            now = self.clock.now_ns()
            sent = []
            for _ in range(steps):
                choice = data.draw(st.sampled_from(["plain", "pending", "resolve", "replay"]))
                if choice in ("plain", "pending"):
                    debit = data.draw(st.sampled_from(["bank", *ACCOUNT_NAMES] if choice == "plain" else ACCOUNT_NAMES))
                    credit = data.draw(st.sampled_from(ACCOUNT_NAMES))
                    if debit == credit:
                        continue
                    timeout = data.draw(st.sampled_from([0, 60])) if choice == "pending" else 0
                    t, key = self._plain(choice, debit, credit, data.draw(st.integers(1, 400)), "USD", timeout)
                elif choice == "resolve":
                    if not self.model.holds:
                        continue
                    kind = data.draw(st.sampled_from(["post", "void"]))
                    key = (kind, (self._new_id(), data.draw(st.sampled_from(sorted(self.model.holds))), None))
                    t = self._rebuild(*key)
                else:
                    singles = sorted(i for i in self.model.transfers if i not in self.chain_of)
                    if not singles:
                        continue
                    key = self.model.transfers[data.draw(st.sampled_from(singles))]
                    t = self._rebuild(*key)
                # The ledger voids due holds when a batch is applied, so a transaction
                # that sends nothing voids nothing: the model expires once one is sent.
                self.model.expire(now)
                [expected] = self._expected([key], now)
                sent.append((t, expected))
            got = self.ledger.transaction(lambda txn: [txn.create_transfers([t])[0].result for t, _ in sent])
            assert got == [expected for _, expected in sent]
            assert self._totals() == self.model.snapshot()

        @rule()
        def switch_writer(self):
            self.ledger = self.writers[1] if self.ledger is self.writers[0] else self.writers[0]

        @rule(seconds=st.sampled_from([1, 5, 30, 61]))
        def advance_clock(self, seconds):
            self.clock.advance(seconds)

        @rule()
        def run_expiry(self):
            now = self.clock.now_ns()
            self.model.expire(now)
            self.ledger.expire_due()
            assert self._totals() == self.model.snapshot()

    return LedgerMachine


def test_ledger_agrees_with_the_reference_model(database_factory):
    machine = make_machine(database_factory)
    machine.TestCase.settings = settings(
        max_examples=60, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine.TestCase().runTest()
