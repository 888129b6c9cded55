"""The Ledger service: the only code that writes money.

It loads what a batch touches inside one write transaction (after locking the journal
head, which orders every writer), asks the pure engine for a plan, and persists the plan:
journal rows appended, one row update per changed account, holds opened and resolved,
head moved. Inside `Ledger.transaction` (domain works sharing one commit) the journal
rows, account updates and head move are kept back and written once, at the end.
Reads (balances, history, holds, past balances) are here too; how rows are laid out is
`rows`, and the ledger inside a caller's transaction is `transaction`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, select

from danbao.clock import NS_PER_SECOND, Clock, SystemClock
from danbao.errors import DanbaoError
from danbao.ledger import history, joined
from danbao.ledger.engine import Plan, Totals, plan_batch
from danbao.ledger.group_commit import Failed, GroupCommitter
from danbao.ledger.known import KnownTotals
from danbao.ledger.model import (
    ACCOUNTS_PER_BATCH_MAX,
    ID_PATTERN,
    PAGE_LIMIT_MAX,
    TOTAL_MAX,
    TRANSFERS_PER_BATCH_MAX,
    Account,
    AccountFlags,
    AccountKind,
    AccountResult,
    Balance,
    BatchTooLarge,
    Hold,
    HoldState,
    NewAccount,
    NewTransfer,
    Page,
    Transfer,
    TransferResult,
    checked_batch,
)
from danbao.ledger.results import ReadCode, Result
from danbao.ledger.rows import (
    ACCOUNT_ROWS,
    ACCOUNT_SELECT,
    ENGINE_TOTALS_COLUMNS,
    HOLD_COLUMNS,
    HOLD_ROWS,
    MARK_ROWS,
    TRANSFER_COLUMNS,
    TRANSFER_ROWS,
    hold_row,
    lock_head_later,
    move_head,
    write_totals,
)
from danbao.ledger.transaction import LedgerTransaction
from danbao.money import is_currency
from danbao.store import Database
from danbao.store.errors import TransientStoreError, translate
from danbao.store.raw import Raw
from danbao.store.schema import accounts as accounts_t
from danbao.store.schema import holds as holds_t
from danbao.store.schema import is_bigint_text
from danbao.store.schema import transfers as transfers_t
from danbao.text import storable

# Works (domain transactions) sharing one database transaction.
WORKS_PER_GROUP_MAX = 64
# Expired holds voided per batch: expiry work never starves client transfers.
EXPIRIES_PER_BATCH_MAX = 1000
_KINDS = frozenset(k.value for k in AccountKind)
_ACCOUNT_FLAGS = int(AccountFlags.no_overdraft | AccountFlags.no_overcredit)


T = TypeVar("T")


# An account's totals as the engine plans on them, by id.
_TOTALS_OF = f"SELECT id, {ENGINE_TOTALS_COLUMNS} FROM accounts"


def _totals_by_id(rows: list[tuple[Any, ...]]) -> dict[str, Totals]:
    return {row[0]: Totals(*row[1:]) for row in rows}


class _Loaded(NamedTuple):
    """What `Ledger._load` read for a plan, under the head lock."""

    head_timestamp: int
    head_hash: str
    due: list[Hold]  # pending holds past their deadline, oldest first (bounded)
    learn_quiet: bool  # whether the next expiry below may bound when a hold can next be due
    next_expiry: int | None
    journal: dict[str, Transfer]  # entries the batch's ids and pending ids name
    holds: dict[str, Hold]  # holds the batch names, and the due ones
    totals: dict[str, Totals]  # the engine's own copies, to change in place


class Ledger:
    """Accounts and transfers with TigerBeetle's semantics, on a `Database`."""

    def __init__(self, db: Database, clock: Clock | None = None, *, group_commit: bool = True):
        self.db = db
        self.clock = clock or SystemClock()
        # No pending hold can be due before this time (ns), as a committed transaction
        # learned it (see `_apply`): until then the due-holds lookup is skipped.
        self._quiet_until = 0
        # Totals this ledger committed, true while the head stays where it left it.
        self.known = KnownTotals()
        # Whether the head was where this ledger left it the last time it looked: only
        # then is a group tried in one trip (see `_commit_on_known`).
        self._undisturbed = False
        self._committer: GroupCommitter[Sequence[NewTransfer], list[TransferResult]] | None = None
        self._works: GroupCommitter[Callable[[LedgerTransaction], Any], Any] | None = None
        if group_commit:
            # Only an in-process database (SQLite) commits asyncio callers' groups on their
            # event loop (see group_commit); a server's statements wait on the network.
            in_process = db.in_process
            self._committer = GroupCommitter(
                self._commit, size_max=TRANSFERS_PER_BATCH_MAX, size=len, inline=self._commit_now if in_process else None
            )
            inline = self._commit_works_now if in_process else None
            self._works = GroupCommitter(self._commit_works, size_max=WORKS_PER_GROUP_MAX, name="danbao-group-works", inline=inline)

    def close(self) -> None:
        for committer in (self._committer, self._works):
            if committer is not None:
                committer.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts ---------------------------------------------------------------------

    def create_accounts(self, new: Sequence[NewAccount]) -> list[AccountResult]:
        return self.transaction(lambda txn: txn.create_accounts(new))

    def _create_accounts(self, raw: Raw, new: Sequence[NewAccount], now: int) -> list[AccountResult]:
        if len(new) > ACCOUNTS_PER_BATCH_MAX:
            raise BatchTooLarge(f"at most {ACCOUNTS_PER_BATCH_MAX} accounts per batch")
        checked = [(a, _check_account(a)) for a in new]
        ids = sorted({a.id for a, failure in checked if failure is None})
        existing = {
            row[0]: row[1:]
            for row in raw.select_where_in("SELECT id, currency, kind, owner, flags FROM accounts", "id", ids)
        }
        rows: list[tuple[Any, ...]] = []
        results: list[AccountResult] = []
        for account, failure in checked:
            if failure is not None:
                results.append(AccountResult(account.id, failure))
                continue
            fields = (account.currency, account.kind, account.owner, account.flags)
            prior = existing.get(account.id)
            if prior is not None:
                same = tuple(prior) == fields
                results.append(AccountResult(account.id, Result.exists if same else Result.exists_with_different_fields))
                continue
            existing[account.id] = fields
            rows.append((account.id, *fields, 0, 0, 0, 0, now))
            results.append(AccountResult(account.id, Result.ok))
        raw.insert(ACCOUNT_ROWS, rows)
        return results

    def transaction(self, work: Callable[[LedgerTransaction], T]) -> T:
        """Run `work` in one write transaction that holds the journal head lock.

        A domain service (trades, payments) reads and writes its own rows through
        `txn.raw` and moves money through `txn.create_transfers`: its state change and its
        money movements commit together or not at all. `work` may run more than once
        (transient conflicts are retried), so it must decide everything from what it reads.
        A `joined.Join` an outer layer set for this context runs inside the same work.
        """
        work, join = joined.attach(work)
        if self._works is not None:
            result: T = self._works.submit(work)
        else:
            result = self.db.write_raw(lambda raw: LedgerTransaction(self, raw).run(work))
        if join is not None:
            join.committed = True
        return result

    async def transaction_async(self, work: Callable[[LedgerTransaction], T]) -> T:
        """`transaction` for asyncio callers: the work joins a group without a thread hop."""
        if self._works is None:
            import anyio

            return await anyio.to_thread.run_sync(self.transaction, work)  # the thread copies the context, join included
        work, join = joined.attach(work)
        result: T = await self._works.submit_async(work)
        if join is not None:
            join.committed = True
        return result

    def _commit_works(self, works: list[Callable[[LedgerTransaction], Any]]) -> list[Any]:
        # Pipelined on PostgreSQL: the head lock rides with the first read, and the checked
        # writes (trade rows, journal, totals, head) go together before the COMMIT, about
        # four round trips a group where each statement was one. A write that breaks its
        # check then fails the whole group, not its work alone: it is an invariant, never
        # a refusal.
        return self.db.write_raw(lambda raw: self._run_works(raw, works), pipelined=True)

    def _commit_works_now(self, works: list[Callable[[LedgerTransaction], Any]]) -> Callable[[], list[Any]] | None:
        """`_commit_works` without waiting, and with the COMMIT left to the caller: None,
        and nothing done, if the write lock is taken or a conflict needs the retries only
        the writer thread may sleep through."""
        try:
            return self.db.write_raw_commit_later(lambda raw: self._run_works(raw, works))
        except TransientStoreError:
            return None

    def _run_works(self, raw: Raw, works: list[Callable[[LedgerTransaction], Any]]) -> list[Any]:
        """Run a group's works in one transaction; one refusal rolls back that work alone.

        Refusals are rare, so the group first runs under a single savepoint: two statements
        per group rather than two per work. If a work refuses, that pass is rolled back and
        the group runs again with a savepoint per work (a work may run more than once; see
        `transaction`)."""
        if len(works) == 1:
            return [LedgerTransaction(self, raw).run(works[0])]  # a refusal rolls back the whole (one-work) transaction
        raw.write("SAVEPOINT works")  # pipelined, these two travel with the works' statements
        txn = LedgerTransaction(self, raw)
        outcomes: list[Any] = []
        for work in works:
            try:
                outcomes.append(work(txn))
            except Exception as error:
                if isinstance(translate(error), TransientStoreError):
                    raise  # the whole group is retried
                break
        else:
            txn.flush()
            raw.write("RELEASE SAVEPOINT works")
            return outcomes
        raw.run("ROLLBACK TO SAVEPOINT works")
        raw.run("RELEASE SAVEPOINT works")
        return self._run_works_one_by_one(raw, works)

    def _run_works_one_by_one(self, raw: Raw, works: list[Callable[[LedgerTransaction], Any]]) -> list[Any]:
        txn = LedgerTransaction(self, raw)
        outcomes: list[Any] = []
        for work in works:
            mark = txn._mark()
            raw.run("SAVEPOINT work")
            try:
                outcomes.append(work(txn))
            except Exception as error:
                if isinstance(translate(error), TransientStoreError):
                    raise
                raw.run("ROLLBACK TO SAVEPOINT work")
                txn._rewind(mark)
                outcomes.append(Failed(error))
            raw.run("RELEASE SAVEPOINT work")
        txn.flush()
        return outcomes

    # -- transfers --------------------------------------------------------------------

    def create_transfers(self, transfers: Sequence[NewTransfer]) -> list[TransferResult]:
        """Commit a batch; one result per transfer, in order. Durable when this returns."""
        transfers = checked_batch(transfers)
        if not transfers:
            return []
        if self._committer is not None:
            return self._committer.submit(transfers)
        return self._commit([transfers])[0]  # type: ignore[return-value]

    async def create_transfers_async(self, transfers: Sequence[NewTransfer]) -> list[TransferResult]:
        """`create_transfers` for asyncio callers: the batch joins a group without a thread
        hop (on SQLite, committed on the caller's own event loop; see group_commit)."""
        transfers = checked_batch(transfers)
        if not transfers:
            return []
        if self._committer is None:
            import anyio

            return await anyio.to_thread.run_sync(self.create_transfers, transfers)
        return await self._committer.submit_async(transfers)

    def expire_due(self) -> int:
        """Void holds whose timeout has passed (the worker calls this). Returns how many."""
        return len(self.db.write_raw(lambda raw: self._commit_raw(raw, [])).entries)

    def _commit(self, submissions: list[Sequence[NewTransfer]]) -> list[list[TransferResult] | Failed]:
        """Commit a group of submissions together; if that raises, commit each alone.

        Every input gets a result code, so a raise means something impossible (a broken
        invariant, an object that is not a transfer). It must fail that submission alone,
        not every client that happened to share its group."""
        planned = self._commit_on_known(submissions)
        if planned is not None:
            return planned  # type: ignore[return-value]
        try:
            return self.db.write_raw(lambda raw: self._commit_raw(raw, submissions), pipelined=True).results
        except Exception as error:
            if len(submissions) == 1 or isinstance(translate(error), TransientStoreError):
                raise
        outcomes: list[list[TransferResult] | Failed] = []
        for submission in submissions:
            try:
                [results] = self.db.write_raw(lambda raw: self._commit_raw(raw, [submission]), pipelined=True).results
                outcomes.append(results)  # type: ignore[arg-type]
            except Exception as error:
                outcomes.append(Failed(error))
        return outcomes

    def _commit_on_known(self, submissions: list[Sequence[NewTransfer]], *, wait: bool = True) -> list[list[TransferResult]] | None:
        """Commit a group in one round trip, planned on what this ledger knows; or None,
        with nothing done, when the group needs the database's answers first.

        This ledger knows the journal head its last commit left and the totals it wrote
        (`known`). A group that names only such accounts, resolves no hold and comes while
        no hold can be due needs nothing else from the database but the absence of its
        ids, so it is planned at once and sent whole, COMMIT included. The server checks
        what the plan assumed: the head still where this ledger left it (moved first, so
        the head lock still orders every writer), every account updated, and no id already
        in the journal (its unique index). If any of that fails, so does the transaction,
        and the group is committed the usual way, reading what it needs. It is tried only
        while the head was found where this ledger left it the last time it looked (by the
        usual way, or by a trip that went through): where writers in several processes take
        turns, a try would fail every time, a round trip wasted. On SQLite, which
        reads in process and checks each write as it goes, this saves the lookups alone
        (about a tenth of a group of eight); `wait=False` is for the event loop there."""
        if not self._undisturbed:
            return None
        planned = self._plan_on_known(submissions)
        if planned is None:
            return None
        head_hash, plan = planned

        try:
            self.db.write_raw(lambda raw: self._persist(raw, plan, head_hash), attempts=1, one_trip=True, wait=wait)
        except Exception:  # the usual way finds out what it was, and says so
            self._undisturbed = False
            return None
        return plan.results

    def _plan_on_known(self, submissions: list[Sequence[NewTransfer]]) -> tuple[str, Plan] | None:
        """The group planned on what this ledger knows, and the head hash that assumes;
        None if it needs what only the database knows (see `_commit_on_known`)."""
        try:
            now = self.clock.now_ns()
            if now >= self._quiet_until:
                return None
            account_ids: set[str] = set()
            for transfers in submissions:
                for t in transfers:
                    if t.pending_id is not None:
                        return None
                    for account_id in (t.debit_account_id, t.credit_account_id):
                        if storable(account_id):  # what is not storable the engine refuses
                            account_ids.add(account_id)
            found = self.known.find_all(account_ids)
            if found is None:
                return None
            (head_timestamp, head_hash), totals = found
            plan = plan_batch(
                submissions,
                accounts=totals,
                journal={},
                holds={},
                due_holds=(),
                now_ns=now,
                head_timestamp=head_timestamp,
                head_hash=head_hash,
            )
        except Exception:  # not a transfer, say: the usual way refuses it, and says why
            return None
        # Refusals alone write nothing, so nothing would check the knowledge they rest on.
        return (head_hash, plan) if plan.entries else None

    def _commit_now(self, submissions: list[Sequence[NewTransfer]]) -> list[list[TransferResult] | Failed] | None:
        """`_commit` without waiting: None, and nothing done, if the write lock is taken or
        anything goes wrong; the writer thread then commits the group as `_commit` does
        (retries, and each submission alone after something impossible)."""
        planned = self._commit_on_known(submissions, wait=False)
        if planned is not None:
            return planned  # type: ignore[return-value]
        try:
            return self.db.write_raw(lambda raw: self._commit_raw(raw, submissions), attempts=1, wait=False).results  # type: ignore[return-value]
        except Exception:
            return None

    def _commit_raw(self, raw: Raw, submissions: list[Sequence[NewTransfer]]) -> Plan:
        return self._apply(raw, submissions, lock_head_later(raw))

    def _learn_quiet(self, quiet_until: int) -> None:
        # A bound once learned stays true (holds opened later are stamped later), so a
        # late writer's smaller one may be ignored.
        if quiet_until > self._quiet_until:
            self._quiet_until = quiet_until

    def _apply(
        self,
        raw: Raw,
        submissions: list[Sequence[NewTransfer]],
        head: Callable[[], tuple[int, str]],
        *,
        expire: bool = True,
        txn: LedgerTransaction | None = None,
    ) -> Plan:
        """Load what the batch touches, plan it, persist the plan (the head lock is held).

        `expire=False` skips voiding due holds: a transaction that already did so moments
        ago (the engine still refuses to post a hold past its deadline). Inside a
        `LedgerTransaction` (`txn`), journal entries join the transaction's appended rows
        and the head moves when it flushes; its unwritten entries count as the journal."""
        now = self.clock.now_ns()
        loaded = self._load(raw, submissions, head, now, expire=expire and now >= self._quiet_until, txn=txn)
        plan = plan_batch(
            submissions,
            accounts=loaded.totals,
            journal=loaded.journal,
            holds=loaded.holds,
            due_holds=loaded.due,
            now_ns=now,
            head_timestamp=loaded.head_timestamp,
            head_hash=loaded.head_hash,
        )
        head_hash = loaded.head_hash
        if plan.entries:
            self._persist(raw, plan, head_hash, txn=txn)
        if loaded.learn_quiet:
            # Once this commits, no hold can be due before the earliest of: the next expiry
            # among holds pending before it, those it opened, and a second (the shortest
            # timeout) after its head, after which any later hold is stamped.
            bounds = [plan.head_timestamp + NS_PER_SECOND, *(h["expires_at"] for h in plan.holds_opened if h["expires_at"] is not None)]
            quiet = min(bounds if loaded.next_expiry is None else [*bounds, loaded.next_expiry])
            raw.on_commit(lambda: self._learn_quiet(quiet))
        return plan

    def _load(
        self,
        raw: Raw,
        submissions: list[Sequence[NewTransfer]],
        head: Callable[[], tuple[int, str]],
        now: int,
        *,
        expire: bool,
        txn: LedgerTransaction | None,
    ) -> _Loaded:
        """What a plan needs: the locked head, the holds due, the journal entries and holds
        the batch names, and its accounts' totals.

        Every lookup is asked before any answer is read, so a pipelined connection makes
        one round trip for all of them."""
        due_later = (
            raw.rows_later(
                f"SELECT {HOLD_COLUMNS} FROM holds WHERE state = 'pending' AND expires_at <= ? "
                f"ORDER BY expires_at, pending_id LIMIT {EXPIRIES_PER_BATCH_MAX}",
                (now,),
            )
            if expire
            else list
        )
        # The next expiry, learned when this plan is its whole transaction (inside a
        # LedgerTransaction a refused work may roll the voiding back and the rest commit).
        next_expiry_later = (
            raw.rows_later("SELECT MIN(expires_at) FROM holds WHERE state = 'pending' AND expires_at > ?", (now,))
            if expire and txn is None
            else None
        )
        transfer_ids: set[str] = set()
        pending_ids: set[str] = set()
        account_ids: set[str] = set()
        for transfers in submissions:
            for t in transfers:  # what is not storable was never stored: the engine refuses it
                if storable(t.id):
                    transfer_ids.add(t.id)
                if storable(t.pending_id):
                    pending_ids.add(t.pending_id)
                if storable(t.debit_account_id):
                    account_ids.add(t.debit_account_id)
                if storable(t.credit_account_id):
                    account_ids.add(t.credit_account_id)
        unwritten = txn._unwritten if txn is not None else {}
        changed = txn._changed if txn is not None else {}
        journal_ids = transfer_ids | pending_ids
        journal_later = raw.select_where_in_later(
            f"SELECT {TRANSFER_COLUMNS} FROM transfers", "id", sorted(journal_ids - unwritten.keys())
        )
        holds_later = raw.select_where_in_later(f"SELECT {HOLD_COLUMNS} FROM holds", "pending_id", sorted(pending_ids))
        wanted = account_ids - changed.keys()
        # Totals this ledger committed are not asked for again if the head is still where
        # that commit left it (checked below, once the head is read).
        known_at, known = self.known.find(wanted)
        totals_later = raw.select_where_in_later(_TOTALS_OF, "id", sorted(wanted - known.keys()))

        head_timestamp, head_hash = head()
        locked_hash = txn._locked_hash() if txn is not None else head_hash
        self._undisturbed = known_at == locked_hash
        if known and known_at != locked_hash:  # someone else wrote since: read them after all
            known = _totals_by_id(raw.select_where_in(_TOTALS_OF, "id", sorted(known)))
        due = [Hold(*row) for row in due_later()]
        # Every hold due now is voided by this plan, unless there are more than it takes.
        learn_quiet = next_expiry_later is not None and len(due) < EXPIRIES_PER_BATCH_MAX
        next_expiry = next_expiry_later()[0][0] if learn_quiet else None  # type: ignore[misc]
        journal = {row[0]: Transfer(*row) for row in journal_later()}
        journal.update((i, unwritten[i]) for i in journal_ids if i in unwritten)
        holds = {h.pending_id: h for h in due}
        for row in holds_later():
            holds.setdefault(row[0], Hold(*row))
        totals = _totals_by_id(totals_later())
        totals.update(known)
        # A hold's accounts, when no transfer in the batch names them: a second, rare read.
        unread = {a for h in holds.values() for a in (h.debit_account_id, h.credit_account_id)} - account_ids
        account_ids |= unread
        totals.update(_totals_by_id(raw.select_where_in(_TOTALS_OF, "id", sorted(unread - changed.keys()))))
        # Copies: the engine changes the totals it is given in place.
        totals.update((i, changed[i].copy()) for i in account_ids if i in changed)
        return _Loaded(head_timestamp, head_hash, due, learn_quiet, next_expiry, journal, holds, totals)

    def _persist(self, raw: Raw, plan: Plan, head_hash: str, *, txn: LedgerTransaction | None = None) -> None:
        """Write a plan made on the head at `head_hash`; once it commits, this ledger knows
        the totals it wrote (inside a transaction, that is reported when it flushes)."""
        if txn is None:
            # The head first: where its lock was not taken yet, it is taken before any
            # account's row, as every writer takes them.
            new_head = (plan.head_timestamp, plan.head_hash)
            move_head(raw, head_hash, new_head, len(plan.entries))
            raw.insert(TRANSFER_ROWS, plan.entries)  # entries are rows in column order
            raw.insert(MARK_ROWS, plan.marks)
            write_totals(raw, plan.accounts)
            raw.on_commit(lambda: self.known.learn(head_hash, new_head, plan.accounts))
        else:
            txn._keep(plan)
        if plan.holds_opened:
            raw.insert(HOLD_ROWS, [hold_row(h) for h in plan.holds_opened])
        if plan.holds_resolved:
            raw.update_from_rows(
                "UPDATE holds SET state = v.column2 FROM {rows} "
                "WHERE holds.pending_id = v.column1 AND holds.state = 'pending'",
                ("text", "text"),
                sorted(plan.holds_resolved.items()),
                why="a hold resolved twice",
            )

    # -- reads ------------------------------------------------------------------------

    def account(self, account_id: str) -> Account | None:
        found = self.accounts([account_id])
        return found[0] if found else None

    def accounts(self, account_ids: Sequence[str]) -> list[Account]:
        if len(account_ids) > PAGE_LIMIT_MAX:
            raise BatchTooLarge(f"at most {PAGE_LIMIT_MAX} accounts per lookup")

        wanted = [i for i in account_ids if storable(i)]

        def read(conn: Connection) -> list[Account]:
            rows = conn.execute(select(*ACCOUNT_SELECT).where(accounts_t.c.id.in_(wanted)).order_by(accounts_t.c.id))
            return [Account(**row._mapping) for row in rows]

        return self.db.read(read) if wanted else []

    def accounts_of(self, owner: str, *, limit: int = 100) -> list[Account]:
        limit = _page_limit(limit)
        if not storable(owner):
            return []
        return self.db.read(
            lambda conn: [
                Account(**row._mapping)
                for row in conn.execute(
                    select(*ACCOUNT_SELECT).where(accounts_t.c.owner == owner).order_by(accounts_t.c.id).limit(limit)
                )
            ]
        )

    def transfer(self, transfer_id: str) -> Transfer | None:
        if not storable(transfer_id):
            return None
        row = self.db.read(lambda conn: conn.execute(select(*history.TRANSFER_COLUMNS).where(transfers_t.c.id == transfer_id)).first())
        return Transfer(**row._mapping) if row is not None else None

    def transfers_of(self, account_id: str, *, after: str | None = None, limit: int = 100) -> Page:
        """An account's journal entries in time order, a page at a time (cursor = timestamp)."""
        limit = _page_limit(limit)
        since = _cursor(after)
        if not storable(account_id):
            return Page([], None)
        return _page(self.db.read(lambda conn: history.transfers_after(conn, account_id, since, limit + 1)), limit)

    def transfers_by_ref(self, ref: str, *, limit: int = 100) -> list[Transfer]:
        limit = _page_limit(limit)
        if not storable(ref):
            return []
        return self.db.read(
            lambda conn: [
                Transfer(**row._mapping)
                for row in conn.execute(
                    select(*history.TRANSFER_COLUMNS).where(transfers_t.c.ref == ref).order_by(transfers_t.c.timestamp).limit(limit)
                )
            ]
        )

    def balance_at(self, account_id: str, timestamp_ns: int) -> Balance:
        """The account's four totals just after the last entry at or before `timestamp_ns`."""
        if type(timestamp_ns) is not int or not 0 <= timestamp_ns <= TOTAL_MAX:
            raise DanbaoError("timestamp must be nanoseconds since the epoch", field="timestamp", code=ReadCode.timestamp_invalid)
        if not storable(account_id):
            return Balance(0, 0, 0, 0)  # as for any account with no entries
        return self.db.read(lambda conn: history.balance_at(conn, account_id, timestamp_ns))

    def holds(self, account_id: str | None = None, *, state: str = "pending", after: str | None = None, limit: int = 100) -> Page:
        limit = _page_limit(limit)
        since = _cursor(after)
        if state not in HoldState.__members__:
            raise DanbaoError(f"state must be one of {', '.join(HoldState.__members__)}", field="state", code=ReadCode.state_invalid)
        if account_id is not None and not storable(account_id):
            return Page([], None)
        query = select(holds_t).where(holds_t.c.state == state, holds_t.c.timestamp > since)
        if account_id is not None:
            query = query.where(
                (holds_t.c.debit_account_id == account_id) | (holds_t.c.credit_account_id == account_id)
            )
        query = query.order_by(holds_t.c.timestamp).limit(limit + 1)
        return _page(self.db.read(lambda conn: [_hold(r) for r in conn.execute(query)]), limit)


def _page(rows: list[Any], limit: int) -> Page:
    """A page from up to limit + 1 rows in timestamp order: the extra row says there is more."""
    items = rows[:limit]
    return Page(items, str(items[-1].timestamp) if len(rows) > limit and items else None)


def _page_limit(limit: int) -> int:
    if type(limit) is not int or not 1 <= limit <= PAGE_LIMIT_MAX:
        raise DanbaoError(f"limit must be between 1 and {PAGE_LIMIT_MAX}", field="limit", code=ReadCode.limit_invalid)
    return limit


def _cursor(after: str | None) -> int:
    if after is None:
        return -1
    if not isinstance(after, str) or not is_bigint_text(after):
        raise DanbaoError("cursor is not one this server issued", field="after", code=ReadCode.cursor_invalid)
    return int(after)


def _hold(row: Any) -> Hold:
    return Hold(**row._mapping)


def _check_account(a: NewAccount) -> Result | None:
    if not isinstance(a.id, str) or not ID_PATTERN.match(a.id):
        return Result.id_invalid
    if type(a.flags) is not int or a.flags & ~_ACCOUNT_FLAGS or a.flags == _ACCOUNT_FLAGS:
        return Result.flags_invalid
    if not is_currency(a.currency):
        return Result.currency_unknown
    if not isinstance(a.kind, str) or a.kind not in _KINDS:
        return Result.kind_unknown
    if a.owner is not None and (not isinstance(a.owner, str) or not ID_PATTERN.match(a.owner)):
        return Result.owner_invalid
    return None
