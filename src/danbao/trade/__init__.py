"""Trades in three settlement models (escrow, direct, cash on delivery) on the ledger.

Its names load on first use (`danbao.lazy`): the API's wire models read a few of its limits
without loading the engine, the ledger and the store."""

from danbao.lazy import exports

__all__, __getattr__, __dir__ = exports(__name__, {
    "Action": "danbao.trade.model",
    "ClaimReason": "danbao.trade.model",
    "CollectMethod": "danbao.trade.model",
    "Decision": "danbao.trade.model",
    "Model": "danbao.trade.model",
    "Parties": "danbao.trade.parties",
    "Party": "danbao.trade.model",
    "Role": "danbao.trade.model",
    "run_due": "danbao.trade.worker",
    "run_until_idle": "danbao.trade.worker",
    "settings_help": "danbao.trade.config",
    "share_of": "danbao.trade.config",
    "Status": "danbao.trade.model",
    "Trade": "danbao.trade.model",
    "TradeCode": "danbao.trade.errors",
    "TradeConfig": "danbao.trade.config",
    "TradeError": "danbao.trade.errors",
    "TradeEvent": "danbao.trade.model",
    "Trades": "danbao.trade.service",
    "WorkerRun": "danbao.trade.worker",
})
