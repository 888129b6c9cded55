"""The `danbao` command: a thin layer over the Python API. Every command's help has an example.

Each command imports the layers it uses when it runs: `danbao --help`, or a mistyped
command, then answers without loading SQLAlchemy, the ledger and the trade engine (in
about 0.2 s, not a second).
"""

from __future__ import annotations

import json
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.table import Table
from rich.text import Text

from danbao.cli.codes import CliCode
from danbao.cli.output import console, err, fail
from danbao.clock import NS_PER_SECOND
from danbao.errors import DanbaoError
from danbao.money import format_amount, parse_amount

if TYPE_CHECKING:
    from danbao.ledger import Account, Ledger
    from danbao.store import Database
    from danbao.trade import WorkerRun

app = typer.Typer(help="danbao: trust and payments for commerce.", no_args_is_help=True, add_completion=False)
account_app = typer.Typer(help="Open and inspect ledger accounts.", no_args_is_help=True)
app.add_typer(account_app, name="account")

_state: dict[str, Optional[str]] = {"url": None}


@app.callback()
def _root(
    database_url: Optional[str] = typer.Option(
        None, "--database-url", envvar="DANBAO_DATABASE_URL",
        help="sqlite:///path.db (default ./danbao.db) or postgresql://user@host/db",
    ),
) -> None:
    _state["url"] = database_url


@contextmanager
def _store(*, schema: bool = True) -> Iterator[Database]:
    """The database --database-url names, closed afterwards. With `schema`, it must have
    danbao's current schema: a new or older database is pointed to `danbao init`."""
    from danbao.store import Database, current_revision, head_revision, sqlite_file

    db = None
    try:
        # Connecting would create the file: a command that reads the books must not leave
        # an empty database behind where there was none.
        if schema and (path := sqlite_file(_state["url"])) is not None and not path.exists():
            raise DanbaoError(f"no database at {path}: run `danbao init`", code=CliCode.database_not_found)
        db = Database(_state["url"])
        if schema and (revision := current_revision(db)) != (head := head_revision()):
            raise DanbaoError(
                f"the database at {db.shown_url} is at schema {revision or 'none'}, not {head}: run `danbao init`",
                code=CliCode.schema_out_of_date,
            )
        yield db
    except DanbaoError as error:
        fail(error)
    finally:
        if db is not None:
            db.dispose()


@contextmanager
def _ledger() -> Iterator[Ledger]:
    from danbao.ledger import Ledger

    with _store() as db, Ledger(db, group_commit=False) as ledger:
        yield ledger


@app.command()
def init() -> None:
    """Create or upgrade the schema. Example: danbao init"""
    from danbao.store.migrate import upgrade  # Alembic: only this command needs it

    with _store(schema=False) as db:
        upgrade(db)
        console.print(f"schema ready at {db.shown_url}")


@app.command("audit")
def audit_command(
    anchor: str | None = typer.Option(
        None, help="a journal head an earlier audit printed (<entries>:<hash>): prove the journal up to it unchanged"
    ),
) -> None:
    """Prove the books: hash chain, totals, debits = credits, no overdraft. Example: danbao audit"""
    from rich.progress import Progress

    from danbao.ledger import JournalHead, audit
    from danbao.trade.reconcile import reconcile

    try:
        anchored = None if anchor is None else JournalHead.parse(anchor)
    except DanbaoError as error:
        fail(error)
    # A journal of millions of entries takes minutes: on a terminal, a bar shows the walk
    # (and is gone once the report prints).
    with _store() as db, Progress(console=console, transient=True) as bar:
        task = bar.add_task("auditing the journal", total=None)
        report = audit(db, anchored, progress=lambda walked, entries: bar.update(task, completed=walked, total=entries))
        trades = reconcile(db)
    table = Table(title="danbao audit")
    for column in ("currency", "debits posted", "credits posted", "debits pending", "credits pending"):
        table.add_column(column, justify="right")
    for code, c in sorted(report.currencies.items()):
        table.add_row(code, *(format_amount(v, code) for v in (c.debits_posted, c.credits_posted, c.debits_pending, c.credits_pending)))
    console.print(table)
    console.print(f"{report.transfers_checked} transfers, {report.accounts_checked} accounts checked")
    console.print(f"journal head {report.head}" + ("" if anchored is None else f" (anchored at {anchored.entries} entries)"))
    console.print(f"{trades.trades_checked} escrow and cod trades reconciled with the escrow accounts")
    violations = [*report.violations, *trades.violations]
    if not violations:
        console.print(Text.assemble(("OK", "green"), ": the books balance and the journal is intact"))
        return
    for violation in violations:
        console.print(Text.assemble(("VIOLATION", "red"), f" {violation}"))
    console.print(f"{report.violations_count + len(trades.violations)} violation(s)", style="red")
    raise typer.Exit(1)


@contextmanager
def _sigterm_as_ctrl_c() -> Iterator[None]:
    """Service managers stop a process with SIGTERM: while inside, it ends a long-running
    command as Ctrl-C does, through the command's `finally` (jobs stopped, database
    closed), rather than killing it mid-way."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command()
def worker(
    once: bool = typer.Option(False, "--once", help="run what is due now, then exit"),
    interval: float = typer.Option(1.0, min=0.05, max=3600, help="seconds between passes"),
) -> None:
    """Run due jobs: trade timeouts and expired holds. Safe to run twice at once.

    Example: danbao worker --once
    """
    from danbao.ledger import Ledger
    from danbao.trade import Trades, run_until_idle

    with _store() as db:
        trades = Trades(Ledger(db, group_commit=False))
        if once:
            run = run_until_idle(trades)
            console.print(f"{run.trades_advanced} trade(s) advanced, {run.holds_expired} hold(s) expired")
            _print_failures(run)
            if run.failures:
                raise typer.Exit(1)
            return
        try:
            with _sigterm_as_ctrl_c():
                while True:
                    try:
                        run = run_until_idle(trades)
                    except DanbaoError as error:  # the database may be back by the next pass
                        err.print(Text.assemble(("pass failed", "red"), f" {error.code}: {error.message}"))
                    else:
                        if run.trades_advanced or run.holds_expired:
                            console.print(f"{run.trades_advanced} trade(s) advanced, {run.holds_expired} hold(s) expired")
                        _print_failures(run)
                    time.sleep(interval)  # a daemon's idle wait, not synchronisation
        except KeyboardInterrupt:
            console.print("worker stopped")


def _print_failures(run: WorkerRun) -> None:
    for failure in run.failures:
        err.print(Text.assemble(("job failed", "red"), f" {failure}"))


@account_app.command("create")
def account_create(
    id: str,
    currency: str = typer.Option("USD", help="ISO 4217 code"),
    kind: str = typer.Option("wallet", help="wallet, merchant, escrow, bank_clearing, ..."),
    owner: Optional[str] = typer.Option(None),
    no_overdraft: bool = typer.Option(False, "--no-overdraft", help="debits may not exceed credits"),
    no_overcredit: bool = typer.Option(False, "--no-overcredit", help="credits may not exceed debits"),
) -> None:
    """Open an account. Example: danbao account create alice --currency CNY --no-overdraft"""
    from danbao.ledger import AccountFlags, NewAccount

    flags = (AccountFlags.no_overdraft if no_overdraft else 0) | (AccountFlags.no_overcredit if no_overcredit else 0)
    with _ledger() as ledger:
        [result] = ledger.create_accounts([NewAccount(id, currency, kind, owner, int(flags))])
    _report(result.id, result.result)


def _existing_account(ledger: Ledger, id: str) -> Account:
    account = ledger.account(id)
    if account is None:
        fail(DanbaoError(f"no account {id!r}", code=CliCode.account_not_found))
    return account


def _utc(timestamp_ns: int) -> str:
    return datetime.fromtimestamp(timestamp_ns // NS_PER_SECOND, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@account_app.command("show")
def account_show(
    id: str,
    at: Optional[str] = typer.Option(None, help="a past moment, UTC unless it says otherwise: 2026-11-23T10:00:00"),
) -> None:
    """Show an account's totals, now or at a past moment. Example: danbao account show alice --at 2026-11-23T10:00"""
    moment = None if at is None else _moment(at)
    with _ledger() as ledger:
        a = _existing_account(ledger, id)
        totals = a if moment is None else ledger.balance_at(id, moment)
    fmt = lambda v: format_amount(v, a.currency)  # noqa: E731
    if moment is None:
        head = f"balance {fmt(a.balance)} available {fmt(a.available)}"
    else:
        head = f"at {_utc(moment)} UTC balance {fmt(totals.balance)}"
    console.print(
        f"{a.id} ({a.kind}, {a.currency}) {head}\n"
        f"  debits pending {fmt(totals.debits_pending)} posted {fmt(totals.debits_posted)}; "
        f"credits pending {fmt(totals.credits_pending)} posted {fmt(totals.credits_posted)}"
    )


def _moment(text: str) -> int:
    """Nanoseconds since the epoch from an ISO 8601 time (UTC unless it names an offset)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        from danbao.ledger.results import ReadCode  # the ledger's own code for a bad moment

        fail(DanbaoError(f"{text!r} is not an ISO 8601 time such as 2026-11-23T10:00:00", field="at", code=ReadCode.timestamp_invalid))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return (parsed - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


@account_app.command("history")
def account_history(id: str, after: Optional[str] = None, limit: int = 20) -> None:
    """An account's transfers in time order. Example: danbao account history alice --limit 50"""
    from danbao.ledger import TransferFlags

    with _ledger() as ledger:
        _existing_account(ledger, id)
        page = ledger.transfers_of(id, after=after, limit=limit)
    table = Table()
    for column in ("time (UTC)", "id", "debit", "credit", "amount", "code", "flags"):
        table.add_column(column)
    for t in page.items:
        flags = ",".join(f.name for f in TransferFlags if f and t.flags & f) or "-"  # type: ignore[misc]
        table.add_row(_utc(t.timestamp), t.id, t.debit_account_id, t.credit_account_id, format_amount(t.amount, t.currency), t.code, flags)
    _print_page(table, page.next_cursor)


@account_app.command("holds")
def account_holds(
    id: str,
    state: str = typer.Option("pending", help="pending, posted, voided or expired"),
    after: Optional[str] = None,
    limit: int = 20,
) -> None:
    """An account's holds (pending transfers) in time order. Example: danbao account holds alice"""
    with _ledger() as ledger:
        _existing_account(ledger, id)
        page = ledger.holds(id, state=state, after=after, limit=limit)
    table = Table()
    table.title = f"{state} holds on {id}"
    for column in ("time (UTC)", "pending id", "debit", "credit", "amount", "expires"):
        table.add_column(column)
    for h in page.items:
        expires = "-" if h.expires_at is None else _utc(h.expires_at)
        table.add_row(_utc(h.timestamp), h.pending_id, h.debit_account_id, h.credit_account_id, format_amount(h.amount, h.currency), expires)
    _print_page(table, page.next_cursor)


def _print_page(table: Table, next_cursor: Optional[str]) -> None:
    console.print(table)
    if next_cursor:
        console.print(f"more: --after {next_cursor}")


# A negative amount ("-5") would otherwise be read as an unknown option, and refused
# before the amount's own check could say why.
@app.command(context_settings={"ignore_unknown_options": True})
def transfer(
    id: str,
    debit: str,
    credit: str,
    amount: str = typer.Argument(..., help='decimal in major units, e.g. "12.30"'),
    currency: str = typer.Option("USD"),
    code: str = typer.Option("transfer"),
    ref: Optional[str] = typer.Option(None),
    metadata: Optional[str] = typer.Option(None, help="a JSON object"),
    pending: bool = typer.Option(False, help="place a hold instead of moving money"),
    timeout: int = typer.Option(0, help="seconds until a pending hold expires (0: never)"),
) -> None:
    """Move money between two accounts. Example: danbao transfer t1 alice bob 12.30 --currency USD"""
    from danbao.ledger import NewTransfer, TransferFlags

    with _ledger() as ledger:
        minor = parse_amount(amount, currency)
        meta = _metadata(metadata)
        flags = int(TransferFlags.pending) if pending else 0
        [result] = ledger.create_transfers(
            [NewTransfer(id, debit, credit, minor, currency, code, ref, meta, flags, timeout_seconds=timeout)]
        )
    _report(result.id, result.result)


@app.command()
def post(
    pending_id: str,
    id: str,
    amount: Optional[str] = typer.Option(None, help="post less than held (major units)"),
    currency: str = typer.Option("USD", help="currency of --amount"),
) -> None:
    """Post a hold, in full or in part. Example: danbao post h1 p1 --amount 5.00"""
    from danbao.ledger import NewTransfer, TransferFlags

    with _ledger() as ledger:
        minor = parse_amount(amount, currency) if amount is not None else None
        [result] = ledger.create_transfers([NewTransfer(id, amount=minor, flags=int(TransferFlags.post_pending), pending_id=pending_id)])
    _report(result.id, result.result)


@app.command()
def void(pending_id: str, id: str) -> None:
    """Release a hold. Example: danbao void h1 v1"""
    from danbao.ledger import NewTransfer, TransferFlags

    with _ledger() as ledger:
        [result] = ledger.create_transfers([NewTransfer(id, flags=int(TransferFlags.void_pending), pending_id=pending_id)])
    _report(result.id, result.result)


def _metadata(text: Optional[str]) -> Optional[dict]:  # type: ignore[type-arg]
    from danbao.ledger import Result

    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as error:
        raise DanbaoError(f"metadata is not JSON: {error}", field="metadata", code=Result.metadata_invalid) from error
    if not isinstance(value, dict):
        raise DanbaoError("metadata must be a JSON object", field="metadata", code=Result.metadata_invalid)
    return value


def _report(id: str, result) -> None:  # type: ignore[no-untyped-def]
    if result.succeeded:
        console.print(Text.assemble(f"{id}: ", (result.value, "green")))
        return
    err.print(Text.assemble(f"{id}: ", (result.value, "red")))
    raise typer.Exit(1)


@app.command("admin-key")
def admin_key(
    revoke_others: bool = typer.Option(False, "--revoke-others", help="first revoke every other operator key (one leaked)"),
) -> None:
    """Issue a new admin key for the operator, shown once: for a key lost or leaked.

    Database access is the authority here, as for danbao init.
    A running server stops accepting a revoked key within seconds.
    Example: danbao admin-key --revoke-others
    """
    from danbao.api.keys import ApiKeys, TooManyKeys, new_operator_key
    from danbao.clock import SystemClock
    from danbao.trade import Trades

    with _ledger() as ledger:
        try:
            issued = new_operator_key(ApiKeys(ledger, SystemClock()), Trades(ledger).parties, revoke_others=revoke_others)
        except TooManyKeys as error:
            fail(DanbaoError(f"{error}: revoke one, or pass --revoke-others", code=CliCode.too_many_keys))
    console.print(Text.assemble("operator admin key (shown once, keep it safe): ", (issued.key, "bold")))


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, min=1, max=65535),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
    webhooks_to_private_networks: bool = typer.Option(
        False, help="also deliver webhooks to loopback, private and link-local addresses (receivers on your own network)"
    ),
) -> None:
    """Serve the HTTP API (and run due jobs and webhooks beside it).

    At first start it creates the operator party and prints its admin key, once.
    Lost it? danbao admin-key issues another.
    Example: danbao serve --port 8000
    """
    import uvicorn

    from danbao.api import Services, create_app
    from danbao.api.background import Background
    from danbao.api.keys import bootstrap_operator
    from danbao.api.serving import ready_to_serve
    from danbao.api.webhooks import WebhookSettings

    try:
        services = Services.open(_state["url"], webhooks=WebhookSettings(private_networks=webhooks_to_private_networks))
    except DanbaoError as error:
        fail(error)
    admin = bootstrap_operator(services.keys, services.trades.parties)
    if admin is not None:
        console.print(Text.assemble("operator admin key (shown once, keep it safe): ", (admin.key, "bold")))
    background = Background(services).start()
    console.print(f"danbao API on http://{host}:{port} (OpenAPI at /docs), database {services.db.shown_url}")
    app = create_app(services)
    ready_to_serve()
    # uvicorn shuts down gracefully on SIGTERM, then raises it again under the handler it
    # found: the default one would kill the process before the background stops.
    with _sigterm_as_ctrl_c():
        try:
            uvicorn.run(app, host=host, port=port, log_level=log_level)
        finally:
            background.stop()
            services.close()


def _register_extras() -> None:
    from danbao.cli import bench, demo

    app.add_typer(bench.app, name="bench")
    app.command("demo")(demo.demo)


_register_extras()


def main() -> None:
    app()
