"""The worker: runs every job that is due (trade timeouts, expired ledger holds).

Each job re-reads its trade under the ledger's head lock and does nothing unless the job
is still due, so two workers at once, or one run twice, have the effect of one run.
"""

from __future__ import annotations

from dataclasses import dataclass

from danbao.trade import repository
from danbao.trade.model import WORKER_TRADES_PER_RUN_MAX
from danbao.trade.service import Trades


@dataclass(frozen=True, slots=True)
class WorkerRun:
    trades_advanced: int
    holds_expired: int


def run_due(trades: Trades, *, limit: int = WORKER_TRADES_PER_RUN_MAX) -> WorkerRun:
    """One pass over what is due now (at most `limit` trades; call again for more)."""
    now = trades.ledger.clock.now_ns()
    due = trades.ledger.db.read_raw(lambda raw: repository.due_trade_ids(raw, now, limit=min(limit, WORKER_TRADES_PER_RUN_MAX)))
    advanced = sum(1 for trade_id in due if trades.run_due_one(trade_id) is not None)
    return WorkerRun(advanced, trades.ledger.expire_due())


def run_until_idle(trades: Trades, *, passes_max: int = 1000) -> WorkerRun:
    """Passes until nothing is due (bounded: a pass that advances nothing ends it)."""
    advanced = expired = 0
    for _ in range(passes_max):
        run = run_due(trades)
        advanced += run.trades_advanced
        expired += run.holds_expired
        if run.trades_advanced == 0 and run.holds_expired == 0:
            break
    return WorkerRun(advanced, expired)
