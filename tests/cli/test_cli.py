"""The CLI is usable by hand: clear results, clear errors, non-zero exits on failure."""

from __future__ import annotations

import os
import pty
import re
import sqlite3
import subprocess

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from danbao.cli.main import app
from danbao.store import Database
from tests.cli import CLI
from tests.ports import unused_port

runner = CliRunner()


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path}/cli.db"
    assert runner.invoke(app, ["--database-url", url, "init"]).exit_code == 0
    return url


def run(url, *args):
    return runner.invoke(app, ["--database-url", url, *args])


def test_a_person_can_open_accounts_move_money_and_audit(url):
    assert run(url, "account", "create", "bank", "--kind", "bank_clearing", "--currency", "CNY").exit_code == 0
    assert run(url, "account", "create", "alice", "--currency", "CNY", "--no-overdraft").exit_code == 0
    assert run(url, "account", "create", "bob", "--currency", "CNY").exit_code == 0
    assert run(url, "transfer", "t1", "bank", "alice", "100.00", "--currency", "CNY").exit_code == 0
    held = run(url, "transfer", "h1", "alice", "bob", "30.00", "--currency", "CNY", "--pending", "--timeout", "600")
    assert held.exit_code == 0 and "ok" in held.output
    holds = run(url, "account", "holds", "bob")
    assert holds.exit_code == 0 and "h1" in holds.output and "30.00" in holds.output and "pending" in holds.output
    assert run(url, "post", "h1", "p1", "--amount", "25.00", "--currency", "CNY").exit_code == 0
    assert "h1" not in run(url, "account", "holds", "bob").output
    posted = run(url, "account", "holds", "bob", "--state", "posted")
    assert "h1" in posted.output and "posted" in posted.output
    refused = run(url, "account", "holds", "bob", "--state", "lost")
    assert refused.exit_code == 2 and "state_invalid" in refused.output
    shown = run(url, "account", "show", "alice")
    assert "balance 75.00" in shown.output and "available 75.00" in shown.output
    before = run(url, "account", "show", "alice", "--at", "2000-01-01T00:00:00")
    assert before.exit_code == 0 and "at 2000-01-01 00:00:00 UTC balance 0.00" in before.output
    for bad in ("yesterday", "1969-12-31T23:59:59"):
        refused = run(url, "account", "show", "alice", "--at", bad)
        assert refused.exit_code == 2 and "timestamp_invalid" in refused.output, bad
    history = run(url, "account", "history", "alice")
    assert "t1" in history.output and "p1" in history.output
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", history.output), "times a person can read"
    audited = run(url, "audit")
    assert audited.exit_code == 0 and "OK" in audited.output



def test_a_person_can_release_a_hold_and_page_through_a_history(url):
    run(url, "account", "create", "bank", "--kind", "bank_clearing", "--currency", "CNY")
    run(url, "account", "create", "alice", "--currency", "CNY", "--no-overdraft")
    run(url, "account", "create", "bob", "--currency", "CNY")
    run(url, "transfer", "t1", "bank", "alice", "10.00", "--currency", "CNY")
    assert run(url, "transfer", "h1", "alice", "bob", "4.00", "--currency", "CNY", "--pending").exit_code == 0
    assert "available 6.00" in run(url, "account", "show", "alice").output
    released = run(url, "void", "h1", "v1")
    assert released.exit_code == 0 and "v1: ok" in released.output
    assert "available 10.00" in run(url, "account", "show", "alice").output
    again = run(url, "void", "h1", "v2")  # a hold is released once
    assert again.exit_code == 1 and "v2: pending_already_voided" in again.output
    unknown = run(url, "void", "nope", "v3")
    assert unknown.exit_code == 1 and "v3: pending_not_found" in unknown.output

    first = run(url, "account", "history", "alice", "--limit", "2")
    assert first.exit_code == 0 and "t1" in first.output and "h1" in first.output and "v1" not in first.output
    cursor = re.search(r"more: --after (\S+)", first.output)
    assert cursor, first.output
    rest = run(url, "account", "history", "alice", "--limit", "2", "--after", cursor.group(1))
    assert rest.exit_code == 0 and "v1" in rest.output and "t1" not in rest.output and "more:" not in rest.output

def test_refusals_exit_non_zero_with_the_result_code(url):
    run(url, "account", "create", "a", "--no-overdraft")
    run(url, "account", "create", "b")
    refused = run(url, "transfer", "t1", "a", "b", "1.00")
    assert refused.exit_code == 1 and "insufficient_funds" in refused.output
    bad = run(url, "transfer", "t2", "a", "b", "1.001")
    assert bad.exit_code == 2 and "amount_invalid" in bad.output
    bad_meta = run(url, "transfer", "t3", "a", "b", "1", "--metadata", "[1]")
    assert bad_meta.exit_code == 2 and "metadata_invalid" in bad_meta.output
    negative = run(url, "transfer", "t4", "b", "a", "-5")  # an amount, not an option
    assert negative.exit_code == 2 and "amount_invalid" in negative.output and "negative" in negative.output
    mistyped = run(url, "transfer", "t5", "b", "a", "5", "--curency", "USD")
    assert mistyped.exit_code == 2 and "--curency" in mistyped.output
    assert "balance 0.00" in run(url, "account", "show", "a").output
    for command in ("show", "history", "holds"):
        missing = run(url, "account", command, "nobody")
        assert missing.exit_code == 2 and "account_not_found" in missing.output, command


def test_an_argument_that_is_not_utf8_is_refused_with_a_code_not_a_traceback(url):
    bad = "\udcff"  # how Python hands over the byte 0xff of a command line (surrogateescape)
    run(url, "account", "create", "a")
    run(url, "account", "create", "b")
    for args, exit_code, code in [
        (("account", "show", bad), 2, "account_not_found"),
        (("account", "history", bad), 2, "account_not_found"),
        (("transfer", bad, "a", "b", "1.00"), 1, "id_invalid"),
        (("transfer", "t1", "a", bad, "1.00"), 1, "account_id_invalid"),
        (("post", bad, "p1"), 1, "pending_id_invalid"),
        (("account", "create", bad), 1, "id_invalid"),
    ]:
        result = run(url, *args)
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert result.exit_code == exit_code and code in result.output, (args, result.output)
    assert run(url, "audit").exit_code == 0


@pytest.mark.parametrize("command", [["audit"], ["worker", "--once"], ["account", "show", "a"], ["transfer", "t1", "a", "b", "1.00"], ["init"], ["serve"]])
def test_a_database_that_cannot_be_reached_is_one_line_and_exit_2_without_its_password(command):
    result = runner.invoke(app, ["--database-url", f"postgresql://danbao:s3cret@127.0.0.1:{unused_port()}/books", *command])
    assert result.exit_code == 2, result.output
    assert "error store_unavailable:" in result.output and "Traceback" not in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize("command", [["audit"], ["worker", "--once"], ["account", "show", "a"]])
def test_a_command_on_a_database_file_that_is_not_there_points_to_init_and_creates_nothing(tmp_path, command):
    result = run(f"sqlite:///{tmp_path}/typo.db", *command)
    assert result.exit_code == 2 and "database_not_found" in result.output and "danbao init" in result.output
    assert not (tmp_path / "typo.db").exists()


@pytest.mark.parametrize("command", [["audit"], ["worker", "--once"], ["account", "create", "a"]])
def test_a_database_without_the_schema_points_to_init(tmp_path, command):
    url = f"sqlite:///{tmp_path}/fresh.db"
    sqlite3.connect(tmp_path / "fresh.db").close()  # a file, and nothing in it
    result = run(url, *command)
    assert result.exit_code == 2 and "schema_out_of_date" in result.output and "danbao init" in result.output
    assert run(url, "init").exit_code == 0
    assert run(url, *command).exit_code == 0


def test_an_unsupported_database_url_is_refused_with_a_code():
    result = runner.invoke(app, ["--database-url", "mysql://x/y", "audit"])
    assert result.exit_code == 2 and "store_error" in result.output and "sqlite:///" in result.output


def _audit_after_tampering(url, statement: str):  # type: ignore[no-untyped-def]
    """`danbao audit` of books with one transfer, t1, changed behind the ledger's back."""
    run(url, "account", "create", "bank", "--kind", "bank_clearing")
    run(url, "account", "create", "a")
    run(url, "transfer", "t1", "bank", "a", "5.00")
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text(statement))
    db.dispose()
    return run(url, "audit")


def test_audit_exits_non_zero_when_the_books_were_tampered_with(url):
    result = _audit_after_tampering(url, "UPDATE transfers SET amount = 1 WHERE id = 't1'")
    assert result.exit_code == 1
    assert "VIOLATION" in result.output and "hash chain" in result.output


def test_the_audit_prints_the_journal_head_and_proves_an_anchor(url):
    run(url, "account", "create", "bank", "--kind", "bank_clearing")
    run(url, "account", "create", "a")
    run(url, "transfer", "t1", "bank", "a", "5.00")
    first = run(url, "audit")
    head = re.search(r"journal head (1:[0-9a-f]{64})\n", first.output)
    assert first.exit_code == 0 and head, first.output
    run(url, "transfer", "t2", "bank", "a", "1.00")
    anchored = run(url, "audit", "--anchor", head.group(1))
    assert anchored.exit_code == 0 and "(anchored at 1 entries)" in anchored.output and "journal head 2:" in anchored.output
    forged = run(url, "audit", "--anchor", "1:" + "0" * 64)
    assert forged.exit_code == 1 and "VIOLATION the journal's first 1 entries are not the anchor's" in forged.output
    refused = run(url, "audit", "--anchor", "1:xyz")
    assert refused.exit_code == 2 and "error anchor_invalid: '1:xyz' is not a journal anchor" in refused.output


def _no_crash(result) -> bool:
    return result.exception is None or isinstance(result.exception, SystemExit)


def test_text_in_brackets_is_printed_as_it_is_never_read_as_styles(url):
    # Rich reads "[b]x[/b]" as bold x and fails on a stray "[/t]": an id or a message
    # quoting input must come out as typed, and never as a traceback.
    assert run(url, "account", "create", "bank", "--kind", "bank_clearing").exit_code == 0
    created = run(url, "account", "create", "[b]x[/b]")
    assert _no_crash(created) and created.exit_code == 1 and "[b]x[/b]: id_invalid" in created.output
    moved = run(url, "transfer", "[/t]", "bank", "nobody", "1.00")
    assert _no_crash(moved) and moved.exit_code == 1 and "[/t]: id_invalid" in moved.output
    shown = run(url, "account", "show", "[/x]")
    assert _no_crash(shown) and shown.exit_code == 2 and "error account_not_found: no account '[/x]'" in shown.output


def test_the_audit_reports_a_tampered_id_in_brackets_as_it_is(url):
    result = _audit_after_tampering(url, "UPDATE transfers SET id = '[/t1]' WHERE id = 't1'")
    assert _no_crash(result) and result.exit_code == 1
    assert "VIOLATION" in result.output and "[/t1]" in result.output

def test_every_command_help_has_an_example():
    for command in ["init", "audit", "transfer", "post", "void", "demo", "worker"]:
        assert "Example:" in runner.invoke(app, [command, "--help"]).output
    for command in ["create", "show", "history", "holds"]:
        assert "Example:" in runner.invoke(app, ["account", command, "--help"]).output
    assert "Example:" in runner.invoke(app, ["bench", "ledger", "--help"]).output
    assert "Example:" in runner.invoke(app, ["bench", "trades", "--help"]).output


def test_bench_ledger_prints_figures(tmp_path):
    result = runner.invoke(app, ["bench", "ledger", "--seconds", "0.4", "--backend", "sqlite", "--rounds", "2"])
    assert result.exit_code == 0, result.output
    assert "bare driver" in result.output and "hot account" in result.output
    output = " ".join(result.output.split())  # Rich wraps long lines
    assert "batches of 1000, ledger / bare driver = " in output
    # The 8-client ratio is printed for both ledger scenarios, not only the hot account's,
    # with the clients on threads and as asyncio tasks; each ratio with its rounds' range.
    for scenario in ("10000 accounts", "hot account", "10000 accounts, asyncio clients", "hot account, asyncio clients"):
        assert f"8 clients single transfers, ledger, {scenario} (group commit) / bare" in output
    assert output.count("(rounds ") == 6
    # One row per scenario, its two rounds pooled.
    rows = [line for line in result.output.splitlines() if line.count("│") > 5 and "sqlite" in line]
    assert len(rows) == 11


def test_bench_on_a_machine_without_postgresql_says_so_and_how_to_go_on(monkeypatch):
    import danbao.store.throwaway as throwaway

    def missing():  # type: ignore[no-untyped-def]
        raise throwaway.PostgresMissing("no PostgreSQL server binaries (initdb) found; install the postgresql package")

    monkeypatch.setattr(throwaway, "find_bindir", missing)
    for command in (["bench", "ledger", "--seconds", "0.5", "--backend", "postgresql"], ["bench", "trades", "--seconds", "0.5", "--backend", "postgresql"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "postgres_missing" in result.output and "--backend sqlite" in result.output
        assert "Traceback" not in result.output


def test_pooled_ledger_figures_add_up_their_rounds():
    from danbao.bench.ledger_bench import Figure

    slices = [Figure("sqlite", "bare driver", 8, 1, 300, 1.0), Figure("sqlite", "bare driver", 8, 1, 100, 1.0)]
    pooled = Figure.pooled(slices)
    assert (pooled.transfers, pooled.seconds, pooled.rate) == (400, 2.0, 200.0)
    assert pooled.key == ("sqlite", "bare driver", 8, 1)
    with pytest.raises(ValueError):
        Figure.pooled([slices[0], Figure("sqlite", "bare driver", 1, 1, 1, 1.0)])
    with pytest.raises(ValueError):
        Figure.pooled([])


def test_bench_trades_prints_lifecycles_per_second():
    result = runner.invoke(app, ["bench", "trades", "--seconds", "0.2", "--backend", "sqlite", "--clients", "1", "--clients", "2"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "sqlite" in line]
    assert len(rows) == 2
    # lifecycles completed in each run: a positive count in the third column
    assert all(int(row.split("│")[3].strip()) > 0 for row in rows)


def test_bench_api_interleaves_rounds_and_pools_them():
    result = runner.invoke(app, ["bench", "api", "--seconds", "0.6", "--clients", "2", "--rounds", "2"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│") for line in result.output.splitlines() if line.count("│") > 5}
    assert int(rows["escrow"][3].strip()) > 0 and int(rows["bare"][3].strip()) > 0  # requests in both
    assert "2 client(s): trade calls / bare endpoint = " in result.output and "(rounds " in result.output


def test_pooled_figures_add_up_their_slices():
    from danbao.bench.api_bench import ApiFigure

    slices = [ApiFigure("bare endpoint", 4, 100, 0, 1.0, [1.0] * 100), ApiFigure("bare endpoint", 4, 300, 0, 1.0, [3.0] * 300)]
    pooled = ApiFigure.pooled(slices)
    assert (pooled.requests, pooled.seconds, pooled.requests_per_second) == (400, 2.0, 200.0)
    assert pooled.percentile(50) == 3.0 and pooled.percentile(10) == 1.0
    with pytest.raises(ValueError):
        ApiFigure.pooled([slices[0], ApiFigure("bare endpoint", 16, 1, 0, 1.0, [1.0])])


def test_the_bench_bare_endpoint_is_the_frameworks_fast_path() -> None:
    """The ceiling the API is compared with: an async route, as danbao's hot routes are
    (a plain `def` route pays a thread-pool hop per request and would flatter the ratio)."""
    import asyncio
    import inspect

    from danbao.bench.api_server import bare_app

    app = bare_app()
    [route] = [r for r in app.routes if getattr(r, "path", "") == "/bare"]
    assert inspect.iscoroutinefunction(route.endpoint)  # type: ignore[attr-defined]
    assert asyncio.run(route.endpoint()) == {"ok": True}  # type: ignore[attr-defined]


def _market_with_an_old_unpaid_trade(url):  # type: ignore[no-untyped-def]
    from danbao.clock import ManualClock
    from danbao.ledger import Ledger
    from danbao.trade import Trades

    db = Database(url)
    # A manual clock in the past: the pay window closed long before the system clock's now.
    trades = Trades(Ledger(db, ManualClock(), group_commit=False))
    trades.parties.create("buyer", "B", party_id="b")
    trades.parties.create("seller", "S", party_id="s")
    trades.parties.top_up("b", 10_000, "CNY")
    unpaid = trades.create("b", seller_id="s", model="escrow", amount=500, currency="CNY")
    paid = trades.pay(trades.create("b", seller_id="s", model="escrow", amount=700, currency="CNY").id, "b")
    db.dispose()
    return trades, unpaid.id, paid.id


def test_the_worker_runs_what_is_due_and_a_second_run_does_nothing(url):
    _market_with_an_old_unpaid_trade(url)
    first = run(url, "worker", "--once")
    assert first.exit_code == 0 and "1 trade(s) advanced" in first.output
    second = run(url, "worker", "--once")
    assert second.exit_code == 0 and "0 trade(s) advanced" in second.output


def test_the_worker_reports_a_job_that_fails_and_exits_non_zero_after_the_others(url):
    _, unpaid_id, _ = _market_with_an_old_unpaid_trade(url)
    with Database(url).engine.begin() as conn:  # an escrow trade told to wait for a cod settlement
        conn.execute(text("UPDATE trades SET due_action = 'settle' WHERE id = :id"), {"id": unpaid_id})
    result = run(url, "worker", "--once")
    assert result.exit_code == 1
    assert "0 trade(s) advanced" in result.output and f"job failed {unpaid_id}: a system cannot settle an escrow trade" in result.output


def test_audit_reconciles_trades_with_escrow_and_catches_a_tampered_trade(url):
    _, _, paid_id = _market_with_an_old_unpaid_trade(url)
    audited = run(url, "audit")
    assert audited.exit_code == 0 and "2 escrow and cod trades reconciled" in audited.output
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE trades SET paid = 600 WHERE id = :id"), {"id": paid_id})
    db.dispose()
    tampered = run(url, "audit")
    assert tampered.exit_code == 1 and paid_id in tampered.output
    assert "2 violation(s)" in tampered.output  # the trade's and its currency's, though the ledger's own books balance


def test_the_demo_simulates_a_marketplace_and_ends_with_a_clean_audit(tmp_path):
    result = runner.invoke(app, ["demo", "--days", "3", "--trades-per-day", "20", "--database", str(tmp_path / "demo.db")])
    assert result.exit_code == 0, result.output
    assert "Trades by outcome and model" in result.output and "audit: OK" in result.output


def _admin_key_from(output: str) -> str:
    [key] = re.findall(r"dbk_[A-Za-z0-9_-]+", output)
    return key


def test_a_lost_admin_key_is_replaced_and_a_leaked_one_revoked(url):
    from danbao.api.keys import OPERATOR_ID, ApiKeys
    from danbao.clock import SystemClock
    from danbao.ledger import Ledger

    first = run(url, "admin-key")  # no operator yet: it is made, as serve would at first start
    second = run(url, "admin-key")  # the first was lost: both work
    assert first.exit_code == second.exit_code == 0
    db = Database(url)
    keys = ApiKeys(Ledger(db, group_commit=False), SystemClock())
    lost, kept = _admin_key_from(first.output), _admin_key_from(second.output)
    assert keys.verify(lost).id == keys.verify(kept).id == OPERATOR_ID  # type: ignore[union-attr]
    third = run(url, "admin-key", "--revoke-others")  # one leaked: only the new one works
    assert third.exit_code == 0
    fresh = _admin_key_from(third.output)
    assert keys.verify(lost) is None and keys.verify(kept) is None
    assert keys.verify(fresh).role == "operator"  # type: ignore[union-attr]
    db.dispose()


def test_admin_key_at_the_operators_bound_is_refused_until_others_are_revoked(url):
    from danbao.api.keys import KEYS_PER_PARTY_MAX

    for _ in range(KEYS_PER_PARTY_MAX):
        assert run(url, "admin-key").exit_code == 0
    refused = run(url, "admin-key")
    assert refused.exit_code == 2 and "too_many_keys" in refused.output and "dbk_" not in refused.output
    replaced = run(url, "admin-key", "--revoke-others")
    assert replaced.exit_code == 0 and len(re.findall(r"dbk_", replaced.output)) == 1


def test_a_hold_shows_its_flag_in_the_history_and_its_expiry_in_the_holds(url):
    assert run(url, "account", "create", "alice", "--currency", "CNY").exit_code == 0
    assert run(url, "account", "create", "bob", "--currency", "CNY").exit_code == 0
    assert run(url, "transfer", "h1", "alice", "bob", "3.00", "--currency", "CNY", "--pending", "--timeout", "600").exit_code == 0
    assert "pending" in run(url, "account", "history", "bob").output.split("flags", 1)[1]
    holds = run(url, "account", "holds", "bob").output
    assert len(re.findall(r"\d{4}-\d{2}-\d{2}", holds)) == 2, holds  # placed at, and expires at


def test_an_account_opened_with_no_overcredit_refuses_credits_past_its_debits(url):
    assert run(url, "account", "create", "debt", "--currency", "CNY", "--no-overcredit").exit_code == 0
    assert run(url, "account", "create", "bob", "--currency", "CNY").exit_code == 0
    refused = run(url, "transfer", "t1", "bob", "debt", "1.00", "--currency", "CNY")
    assert refused.exit_code == 1 and "exceeds_debits" in refused.output
    assert run(url, "transfer", "t2", "debt", "bob", "1.00", "--currency", "CNY").exit_code == 0
    assert run(url, "transfer", "t3", "bob", "debt", "1.00", "--currency", "CNY").exit_code == 0


@pytest.mark.parametrize(
    ("moment", "ns"),
    [
        ("2026-11-23T10:00:00", 1_795_428_000 * 10**9),
        ("2026-11-23T10:00:00.250001", 1_795_428_000 * 10**9 + 250_001_000),  # to the microsecond
        ("2026-11-23T18:00:00+08:00", 1_795_428_000 * 10**9),  # an offset it names
    ],
)
def test_a_moment_is_read_to_the_microsecond_and_in_utc_unless_it_says_otherwise(moment, ns):
    from danbao.cli.main import _moment

    assert _moment(moment) == ns


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal for its output, as a person at one would."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen([*CLI, *args], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def test_the_audit_shows_its_walk_on_a_terminal_and_not_in_a_pipe(url):
    assert run(url, "account", "create", "bank", "--kind", "bank_clearing", "--currency", "CNY").exit_code == 0
    assert run(url, "account", "create", "alice", "--currency", "CNY").exit_code == 0
    assert run(url, "transfer", "t1", "bank", "alice", "1.00", "--currency", "CNY").exit_code == 0
    status, shown = _on_a_terminal("--database-url", url, "audit")
    assert status == 0 and "auditing the journal" in shown and "OK" in shown
    assert "100%" in shown, "the bar heard the walk end"
    piped = run(url, "audit")
    assert piped.exit_code == 0 and "auditing" not in piped.output
