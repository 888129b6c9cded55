"""The worker: runs every job that is due (trade timeouts, expired ledger holds).

Each job re-reads its trade under the ledger's head lock and does nothing unless the job
is still due, so two workers at once, or one run twice, have the effect of one run.

A trade whose job fails (its row changed behind the engine's back, say, so the table no
longer allows the job) is logged with its traceback and reported in the run, and the
other due trades go on: one broken trade must not stop every timeout on the platform. A
database that cannot be reached fails the whole pass instead, since every job would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from danbao.store.errors import StoreUnavailable
from danbao.trade import repository
from danbao.trade.model import WORKER_TRADES_PER_RUN_MAX
from danbao.trade.service import Trades

log = logging.getLogger("danbao.worker")
# Failed jobs a run reports at most (each is logged in full as it fails).
FAILURES_REPORTED_MAX = 20


@dataclass(frozen=True, slots=True)
class WorkerRun:
    trades_advanced: int
    holds_expired: int
    failures: tuple[str, ...] = ()  # "<trade id>: <error>", for jobs that failed


def run_due(trades: Trades, *, limit: int = WORKER_TRADES_PER_RUN_MAX) -> WorkerRun:
    """One pass over what is due now (at most `limit` trades; call again for more)."""
    now = trades.ledger.clock.now_ns()
    due = trades.ledger.db.read_raw(lambda raw: repository.due_trade_ids(raw, now, limit=min(limit, WORKER_TRADES_PER_RUN_MAX)))
    advanced, failures = 0, []
    for trade_id in due:
        try:
            if trades.run_due_one(trade_id) is not None:
                advanced += 1
        except StoreUnavailable:
            raise
        except Exception as error:
            log.exception("trade %s: its due job failed", trade_id)
            failures.append(f"{trade_id}: {error}")
    return WorkerRun(advanced, trades.ledger.expire_due(), tuple(failures[:FAILURES_REPORTED_MAX]))


def run_until_idle(trades: Trades, *, passes_max: int = 1000) -> WorkerRun:
    """Passes until nothing is due (bounded: a pass that advances nothing ends it, so a
    trade whose job keeps failing is tried once more per call, not forever)."""
    advanced = expired = 0
    failures: dict[str, None] = {}  # in order, each once
    for _ in range(passes_max):
        run = run_due(trades)
        advanced += run.trades_advanced
        expired += run.holds_expired
        failures.update(dict.fromkeys(run.failures))
        if run.trades_advanced == 0 and run.holds_expired == 0:
            break
    return WorkerRun(advanced, expired, tuple(failures)[:FAILURES_REPORTED_MAX])
