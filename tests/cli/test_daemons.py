"""The long-running commands as an operator runs them: `danbao serve` prints its admin key
once and serves the API on the port it was given; it and `danbao worker` stop cleanly on
Ctrl-C and on SIGTERM (how service managers stop a process), and the worker outlives its
database connections being cut."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cli import CLI
from tests.ports import unused_port

LINES_MAX = 200  # what a process may print before the line a test waits for


@dataclass
class Served:
    url: str
    admin_key: str | None  # None when the process printed none (not the first start)
    process: subprocess.Popen[str]


@contextmanager
def serving(database_url: str) -> Iterator[Served]:
    port = unused_port()
    process = subprocess.Popen(
        [*CLI, "--database-url", database_url, "serve", "--port", str(port), "--log-level", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    admin_key = None
    try:
        # Ready when uvicorn says it is bound: its own line, read as it comes (no polling).
        for _ in range(LINES_MAX):
            line = process.stdout.readline()
            assert line, f"serve exited before it was ready (code {process.poll()})"
            if "admin key" in line:
                admin_key = line.rsplit(":", 1)[1].strip()
            if "Uvicorn running on" in line:
                break
        else:
            raise AssertionError("serve never said it was ready")
        yield Served(f"http://127.0.0.1:{port}", admin_key, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        process.stdout.close()


def _closed_cleanly(url: str) -> bool:
    """On SQLite the last connection to close checkpoints the WAL and removes it; a process
    killed before it closed leaves the WAL behind. (PostgreSQL shows nothing comparable.)"""
    if not url.startswith("sqlite:///"):
        return True
    return not Path(url.removeprefix("sqlite:///") + "-wal").exists()


def test_serve_prints_the_admin_key_once_serves_the_api_and_stops_on_a_signal(database_url: str) -> None:
    url = database_url  # a database of its own, on each backend
    with serving(url) as served:
        assert served.admin_key and served.admin_key.startswith("dbk_")
        admin = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {served.admin_key}"})
        assert admin.get("/healthz").json() == {"status": "ok"}
        assert admin.post("/v1/parties", json={"role": "buyer", "name": "Ann", "id": "ann"}).status_code == 201
        key = admin.post("/v1/parties/ann/keys").json()["key"]
        ann = httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {key}"})
        assert ann.post("/v1/wallet/top-up", json={"amount": 500, "currency": "CNY"}).status_code == 201
        assert admin.get("/v1/audit").json()["ok"] is True
        served.process.send_signal(signal.SIGINT)
        assert served.process.wait(timeout=30) == 0
    assert _closed_cleanly(url)

    with serving(url) as again:  # the same database: the operator exists, no key is printed
        assert again.admin_key is None
        assert httpx.get(f"{again.url}/v1/parties/ann", headers={"Authorization": f"Bearer {served.admin_key}"}).status_code == 200
        again.process.send_signal(signal.SIGTERM)  # how service managers stop a process
        assert again.process.wait(timeout=30) == 0
    assert _closed_cleanly(url)


def test_the_worker_runs_passes_until_sigterm_then_closes_the_database(tmp_path) -> None:
    from tests.cli.test_cli import _market_with_an_old_unpaid_trade

    url = f"sqlite:///{tmp_path}/worker.db"
    assert subprocess.run([*CLI, "--database-url", url, "init"], capture_output=True).returncode == 0
    _market_with_an_old_unpaid_trade(url)
    process = subprocess.Popen([*CLI, "--database-url", url, "worker", "--interval", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    try:
        first = process.stdout.readline()  # printed by the first pass, which had work to do
        assert "1 trade(s) advanced" in first, first
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert "worker stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    assert not (tmp_path / "worker.db-wal").exists()


def _old_unpaid_trade(url: str, buyer: str, seller: str) -> None:
    """An escrow trade whose pay window closed long ago: due for the worker to close."""
    from danbao.clock import ManualClock
    from danbao.ledger import Ledger
    from danbao.store import Database
    from danbao.trade import Trades

    db = Database(url)
    trades = Trades(Ledger(db, ManualClock(), group_commit=False))  # a clock far in the past
    trades.create(buyer, seller_id=seller, model="escrow", amount=500, currency="CNY")
    db.dispose()


def test_the_worker_outlives_its_database_connections_being_cut(postgres) -> None:
    import itertools
    import queue
    import threading

    import psycopg

    from tests.cli.test_cli import _market_with_an_old_unpaid_trade
    from tests.databases import TEMPLATE

    name = "worker_outage"
    url = postgres.create_database(name, template=TEMPLATE)
    _market_with_an_old_unpaid_trade(url)  # parties b and s, and one trade due
    process = subprocess.Popen([*CLI, "--database-url", url, "worker", "--interval", "0.05"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.put(line)
        lines.put(f"(the worker exited, code {process.wait()})")

    threading.Thread(target=read, daemon=True).start()
    try:
        assert "1 trade(s) advanced" in lines.get(timeout=30)
        with psycopg.connect(postgres.dsn(), autocommit=True) as admin:  # what a restart or a failover does to it
            cut = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)).fetchall()
        assert cut, "the worker keeps a connection open between passes"
        _old_unpaid_trade(url, "b", "s")
        seen = []
        for _ in itertools.repeat(None, LINES_MAX):
            seen.append(lines.get(timeout=30))
            if "1 trade(s) advanced" in seen[-1]:
                break
        assert any("pass failed" in line and "store_unavailable" in line for line in seen), seen
        assert process.poll() is None  # still running, and it closed the new trade after all
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
