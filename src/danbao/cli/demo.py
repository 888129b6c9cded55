"""`danbao demo`: a guided tour of the ledger on the embedded default, ending in an audit."""

from __future__ import annotations

import random
import uuid

import typer
from rich.console import Console
from rich.progress import track

from danbao.ledger import AccountFlags, Ledger, NewAccount, NewTransfer, Result, TransferFlags, audit
from danbao.money import format_amount
from danbao.store import Database, upgrade

console = Console()


def demo(
    database_url: str = typer.Option("sqlite:///danbao-demo.db", help="where to run the demo"),
    people: int = typer.Option(20, min=2, max=10_000),
    payments: int = typer.Option(2000, min=1, max=1_000_000),
    seed: int = typer.Option(7),
) -> None:
    """Open wallets, top them up, pay, hold and settle, then audit. Example: danbao demo --payments 5000"""
    rng = random.Random(seed)
    db = Database(database_url)
    upgrade(db)
    run = uuid.uuid4().hex[:8]
    wallets = [f"{run}-w{i}" for i in range(people)]
    bank = f"{run}-bank"
    with Ledger(db) as ledger:
        ledger.create_accounts(
            [NewAccount(bank, "CNY", "bank_clearing")]
            + [NewAccount(w, "CNY", "wallet", owner=w, flags=int(AccountFlags.no_overdraft)) for w in wallets]
        )
        ledger.create_transfers([NewTransfer(f"{w}-topup", bank, w, 100_00, "CNY", code="topup") for w in wallets])
        outcome: dict[str, int] = {}
        for i in track(range(payments), description="payments"):
            payer, payee = rng.sample(wallets, 2)
            amount = rng.randint(1, 80_00)
            if rng.random() < 0.2:
                hold = NewTransfer(f"{run}-h{i}", payer, payee, amount, "CNY", code="hold", flags=int(TransferFlags.pending))
                settle_flag = TransferFlags.post_pending if rng.random() < 0.7 else TransferFlags.void_pending
                settle = NewTransfer(f"{run}-s{i}", pending_id=hold.id, flags=int(settle_flag))
                results = ledger.create_transfers([hold])
                if results[0].result is Result.ok:
                    results += ledger.create_transfers([settle])
            else:
                results = ledger.create_transfers([NewTransfer(f"{run}-p{i}", payer, payee, amount, "CNY", code="payment")])
            for r in results:
                outcome[r.result.value] = outcome.get(r.result.value, 0) + 1
        held = sum(a.balance for a in ledger.accounts(wallets))
    report = audit(db)
    db.dispose()
    console.print(f"{people} wallets, {payments} payments on {database_url}")
    for name, count in sorted(outcome.items()):
        console.print(f"  {name:>24}: {count}")
    console.print(f"money in wallets: {format_amount(held, 'CNY')} CNY (topped up {format_amount(people * 100_00, 'CNY')})")
    console.print("audit: " + ("[green]OK[/green]" if report.ok else f"[red]{report.violations}[/red]"))
    if not report.ok or held != people * 100_00 or outcome.get(Result.ok.value, 0) == 0:
        raise typer.Exit(1)
