"""`danbao bench ...`: print throughput figures (the numbers docs/benchmarks.md records)."""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from danbao.bench import SECONDS_DEFAULT
from danbao.cli.codes import CliCode
from danbao.cli.output import console, fail
from danbao.errors import DanbaoError

if TYPE_CHECKING:
    from danbao.bench.ledger_bench import Figure, FigureKey

app = typer.Typer(help="Measure throughput.", no_args_is_help=True)


@contextmanager
def _postgres(postgres_url: str | None, wanted: bool, *databases: str) -> Iterator[dict[str, str]]:
    """A URL per database name: all on the given server, or on a throwaway cluster that
    is stopped afterwards; none when PostgreSQL is not wanted."""
    if not wanted:
        yield {}
        return
    if postgres_url is not None:
        yield dict.fromkeys(databases, postgres_url)
        return
    from danbao.store.throwaway import PostgresMissing, ThrowawayPostgres

    try:
        pg = ThrowawayPostgres().start()
    except PostgresMissing as error:
        fail(DanbaoError(f"{error}; or run with --backend sqlite, or --postgres-url", code=CliCode.postgres_missing))
    try:
        yield {name: pg.create_database(name) for name in databases}
    finally:
        pg.stop()


def _dsn(url: str) -> str:
    """The plain libpq form of a SQLAlchemy PostgreSQL URL, for the bare driver."""
    return url.replace("postgresql+psycopg://", "postgresql://")


@app.command("ledger")
def bench_ledger(
    seconds: float = typer.Option(SECONDS_DEFAULT, min=0.2, max=600, help="duration of each scenario"),
    backend: list[str] = typer.Option(["sqlite", "postgresql"], help="sqlite and/or postgresql"),
    postgres_url: Optional[str] = typer.Option(None, help="use this server instead of a throwaway cluster"),
    rounds: int = typer.Option(3, min=1, max=20, help="interleaved rounds: each scenario runs seconds/rounds per round"),
) -> None:
    """Transfers/s: per commit, batched, 1 vs 8 clients, hot vs spread, vs the bare driver.

    The scenarios run interleaved, `rounds` times each for seconds/rounds, and each
    figure pools its rounds: the bare driver waits on fsync and the ledger on the CPU, so
    a VM whose speed drifts would skew a ratio of figures taken minutes apart.

    Example: danbao bench ledger --seconds 5 --backend sqlite
    """
    from danbao.bench.ledger_bench import Figure, scenarios, sqlite_targets

    slices: dict[FigureKey, list[Figure]] = {}
    with tempfile.TemporaryDirectory(prefix="danbao-bench-") as tmp, _postgres(postgres_url, "postgresql" in backend, "bench_ledger", "bench_bare") as pg:
        plans = []
        if "sqlite" in backend:
            url, bare = sqlite_targets(Path(tmp))
            plans += scenarios("sqlite", url, bare, seconds / rounds)
        if pg:
            plans += scenarios("postgresql", pg["bench_ledger"], _dsn(pg["bench_bare"]), seconds / rounds)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("benchmarking", total=rounds * len(plans))
            for _ in range(rounds):
                for plan in plans:
                    figure = plan()
                    slices.setdefault(figure.key, []).append(figure)
                    progress.advance(task)
    figures = [Figure.pooled(each) for each in slices.values()]
    table = Table(title=f"danbao bench ledger ({platform.machine()}, {platform.python_version()})")
    for column in ("backend", "scenario", "clients", "batch", "transfers", "transfers/s"):
        table.add_column(column, justify="right")
    for f in figures:
        table.add_row(f.backend, f.scenario, str(f.clients), str(f.batch), str(f.transfers), f"{f.rate:,.0f}")
    console.print(table)
    for backend_name in sorted({f.backend for f in figures}):
        _ratios(backend_name, {key: each for key, each in slices.items() if key[0] == backend_name})


def _ratios(backend: str, slices: dict[FigureKey, list[Figure]]) -> None:
    """Each ratio of pooled figures, with the range of the ratios round by round."""
    from danbao.bench.ledger_bench import Figure

    def find(scenario_prefix: str, clients: int, batch: int) -> Optional[list[Figure]]:
        return next((each for (_, scenario, c, b), each in slices.items() if scenario.startswith(scenario_prefix) and (c, b) == (clients, batch)), None)

    def ratio(top: list[Figure], bottom: list[Figure]) -> str:
        per_round = sorted(t.rate / b.rate if b.rate else 0.0 for t, b in zip(top, bottom, strict=True))
        pooled = Figure.pooled(top).rate / (Figure.pooled(bottom).rate or 1.0)
        return f"{pooled:.2f} (rounds {per_round[0]:.2f} to {per_round[-1]:.2f})"

    bare_batch, led_batch = find("bare", 1, 1000), find("ledger, 1", 1, 1000)
    bare_8 = find("bare", 8, 1)
    hot, spread = find("ledger, hot", 1, 1000), find("ledger, 1", 1, 1000)
    if bare_batch and led_batch:
        console.print(f"{backend}: batches of 1000, ledger / bare driver = {ratio(led_batch, bare_batch)} (target >= 0.5)")
    # Spread and hot both against the one bare figure (the bare driver spreads its writes);
    # clients on threads and as asyncio tasks (how `danbao serve` submits) both shown.
    for (_, scenario, clients, batch), led_8 in slices.items():
        if bare_8 and scenario.startswith("ledger") and (clients, batch) == (8, 1):
            console.print(f"{backend}: 8 clients single transfers, {scenario} (group commit) / bare = {ratio(led_8, bare_8)} (target >= 3)")
    if hot and spread:
        console.print(f"{backend}: hot account / spread = {ratio(hot, spread)} (target >= 0.8)")


@app.command("trades")
def bench_trades(
    seconds: float = typer.Option(SECONDS_DEFAULT, min=0.2, max=600, help="duration of each scenario"),
    backend: list[str] = typer.Option(["sqlite", "postgresql"], help="sqlite and/or postgresql"),
    clients: list[int] = typer.Option([1, 8], help="concurrent clients, one run each"),
    postgres_url: Optional[str] = typer.Option(None, help="use this server instead of a throwaway cluster"),
) -> None:
    """Complete escrow lifecycles per second (create, pay, ship, confirm), 1 and 8 clients.

    Example: danbao bench trades --seconds 5 --backend sqlite --clients 1 --clients 8
    """
    from danbao.bench.trade_bench import lifecycle_rate

    figures = []
    with tempfile.TemporaryDirectory(prefix="danbao-bench-") as tmp, _postgres(postgres_url, "postgresql" in backend, "bench_trades") as pg:
        urls = [("sqlite", f"sqlite:///{tmp}/trades.db")] if "sqlite" in backend else []
        urls += [("postgresql", pg["bench_trades"])] if pg else []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("benchmarking", total=len(urls) * len(clients))
            for name, url in urls:
                for n in clients:
                    figures.append(lifecycle_rate(name, url, clients=n, seconds=seconds))
                    progress.advance(task)
    table = Table(title=f"danbao bench trades ({platform.machine()}, {platform.python_version()})")
    for column in ("backend", "clients", "lifecycles", "lifecycles/s", "trade operations/s"):
        table.add_column(column, justify="right")
    for f in figures:
        table.add_row(f.backend, str(f.clients), str(f.lifecycles), f"{f.rate:,.1f}", f"{4 * f.rate:,.0f}")
    console.print(table)


@app.command("api")
def bench_api(
    seconds: float = typer.Option(SECONDS_DEFAULT, min=0.2, max=600, help="duration of each scenario"),
    clients: list[int] = typer.Option([1, 16], help="concurrent clients, one run each"),
    database_url: Optional[str] = typer.Option(None, help="database for the API server (default: a fresh SQLite file)"),
    keyed: bool = typer.Option(False, "--keyed", help="also run lifecycles sending an Idempotency-Key with every POST"),
    rounds: int = typer.Option(3, min=1, max=20, help="interleaved rounds: each scenario runs seconds/rounds per round"),
) -> None:
    """Requests/s and p50/p99 latency of escrow lifecycles over HTTP, and of a bare endpoint.

    Example: danbao bench api --seconds 10 --clients 1 --clients 16
    """
    from danbao.bench.api_bench import ApiFigure, ServerProcess, bare, lifecycles

    slices: dict[tuple[str, int], list[ApiFigure]] = {}
    with tempfile.TemporaryDirectory(prefix="danbao-bench-") as tmp:
        servers = [ServerProcess("danbao", database_url or f"sqlite:///{tmp}/api.db"), ServerProcess("bare")]
        runs = [lambda n, s: lifecycles(servers[0], clients=n, seconds=s)]
        if keyed:
            runs.append(lambda n, s: lifecycles(servers[0], clients=n, seconds=s, idempotency_keys=True))
        runs.append(lambda n, s: bare(servers[1], clients=n, seconds=s))
        try:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("benchmarking", total=rounds * len(runs) * len(clients))
                for n in clients:
                    for _ in range(rounds):
                        for run in runs:
                            figure = run(n, seconds / rounds)
                            slices.setdefault((figure.scenario, n), []).append(figure)
                            progress.advance(task)
        finally:
            for server in servers:
                server.stop()
    figures = [ApiFigure.pooled(each) for each in slices.values()]
    table = Table(title=f"danbao bench api ({platform.machine()}, {platform.python_version()})")
    for column in ("scenario", "clients", "requests", "requests/s", "lifecycles/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    for f in figures:
        table.add_row(f.scenario, str(f.clients), str(f.requests), f"{f.requests_per_second:,.0f}",
                      f"{f.lifecycles_per_second:,.1f}" if f.lifecycles else "", f"{f.percentile(50):.2f}", f"{f.percentile(99):.2f}")
    console.print(table)
    for n in clients:
        trade = next(f for f in figures if f.clients == n and f.scenario == "escrow lifecycle")
        ceiling = next(f for f in figures if f.clients == n and not f.lifecycles)
        per_round = sorted(t.requests_per_second / c.requests_per_second for t, c in zip(slices[("escrow lifecycle", n)], slices[("bare endpoint", n)], strict=True))
        console.print(
            f"{n} client(s): trade calls / bare endpoint = {trade.requests_per_second / ceiling.requests_per_second:.2f} "
            f"(rounds {per_round[0]:.2f} to {per_round[-1]:.2f}; target >= 0.40)"
        )
