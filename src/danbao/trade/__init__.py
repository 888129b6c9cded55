"""Trades in three settlement models (escrow, direct, cash on delivery) on the ledger."""

from danbao.trade.config import TradeConfig, settings_help, share_of
from danbao.trade.errors import TradeCode, TradeError
from danbao.trade.model import (
    Action,
    ClaimReason,
    CollectMethod,
    Decision,
    Model,
    Party,
    Role,
    Status,
    Trade,
    TradeEvent,
)
from danbao.trade.parties import Parties
from danbao.trade.service import Trades
from danbao.trade.worker import WorkerRun, run_due, run_until_idle

__all__ = [
    "Action",
    "ClaimReason",
    "CollectMethod",
    "Decision",
    "Model",
    "Parties",
    "Party",
    "Role",
    "Status",
    "Trade",
    "TradeCode",
    "TradeConfig",
    "TradeError",
    "TradeEvent",
    "Trades",
    "WorkerRun",
    "run_due",
    "run_until_idle",
    "settings_help",
    "share_of",
]
