"""`danbao demo`: a simulated marketplace on the embedded default, ending in a readable report.

The simulation (and Alembic, which it sets the schema up with) loads when the command
runs, not with the CLI: `danbao --help` and the other commands do not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from danbao.cli.codes import CliCode
from danbao.cli.output import console, fail
from danbao.errors import DanbaoError
from danbao.money import format_amount

if TYPE_CHECKING:
    from danbao.sim.market import MarketReport

DEMO_DATABASE = "danbao-demo.db"


def demo(
    buyers: int = typer.Option(30, min=1, max=10_000),
    sellers: int = typer.Option(10, min=1, max=10_000),
    couriers: int = typer.Option(4, min=1, max=10_000),
    days: int = typer.Option(30, min=1, max=365, help="simulated days"),
    trades_per_day: int = typer.Option(40, min=1, max=10_000),
    seed: int = typer.Option(7, help="the same seed gives the same marketplace"),
    database: Path = typer.Option(Path(DEMO_DATABASE), help="SQLite file, made afresh for each run"),
) -> None:
    """Simulate a marketplace in all three settlement models and audit the books.

    Example: danbao demo --days 60 --buyers 100 --seed 3
    """
    from danbao.sim.market import MarketNotEmpty, MarketPlan, simulate

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    plan = MarketPlan(buyers=buyers, sellers=sellers, couriers=couriers, days=days, trades_per_day=trades_per_day, seed=seed)
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("hours"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("market", total=days * 24)
        try:
            report = simulate(f"sqlite:///{database}", plan, lambda done, total: progress.update(task, completed=done))
        except MarketNotEmpty as error:  # pragma: no cover - the file was just removed
            fail(DanbaoError(str(error), code=CliCode.database_not_empty))
    render(report)
    if not report.audit_ok:
        raise typer.Exit(1)


def render(report: MarketReport) -> None:
    from danbao.sim.market import CURRENCY

    plan = report.plan
    console.print(
        Text.assemble(
            "\n", (f"{plan.days} days", "bold"), f" of a market with {plan.buyers} buyers, {plan.sellers} sellers "
            f"({round(plan.dishonest_share * 100)}% dishonest), {plan.couriers} couriers; seed {plan.seed}"
        )
    )
    outcomes = Table(title="Trades by outcome and model")
    models = ("escrow", "direct", "cod")
    outcomes.add_column("outcome")
    for model in (*models, "total"):
        outcomes.add_column(model, justify="right")
    for status in sorted({status for _, status in report.outcomes}):
        counts = [report.outcomes.get((model, status), 0) for model in models]
        outcomes.add_row(status, *(str(c) if c else "" for c in counts), str(sum(counts)))
    totals = [sum(n for (m, _), n in report.outcomes.items() if m == model) for model in models]
    outcomes.add_row(Text("all", style="bold"), *(str(t) for t in totals), str(sum(totals)))
    console.print(outcomes)

    money = Table(title="Money")
    money.add_column("what")
    money.add_column("amount", justify="right")
    for label, value in (
        ("held in escrow for open trades", report.escrow_held),
        ("platform fees earned", report.fees),
        ("insurance premiums paid in", report.premiums),
        ("compensation paid from seller deposits", report.compensation_from_deposits),
        ("compensation paid from the insurance pool", report.compensation_from_pool),
        ("insurance pool now, counting what sellers owe it", report.insurance_pool),
        ("sellers' debts to the pool", report.seller_debts),
    ):
        money.add_row(label, f"{format_amount(value, CURRENCY)} {CURRENCY}")
    console.print(money)
    console.print(
        f"false claims rejected: {report.claims_rejected}; late remittances flagged on couriers: {report.late_remittances}"
    )
    if report.refusals:
        console.print("refused along the way (as a marketplace expects): " + ", ".join(f"{code} {n}" for code, n in report.refusals.most_common()))
    if report.audit_ok:
        console.print(Text.assemble("audit: ", ("OK", "green"), f": {report.transfers} transfers, the books balance and escrow matches open trades"))
    else:
        console.print(Text.assemble("audit: ", ("FAILED", "red")))
        for violation in report.audit_violations:
            console.print(f"  {violation}", style="red")
