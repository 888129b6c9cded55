"""The double-entry ledger: the only writer of money (TigerBeetle's account/transfer model)."""

from danbao.ledger.audit import AuditReport, JournalHead, audit
from danbao.ledger.ledger import Ledger
from danbao.ledger.model import (
    PAGE_LIMIT_MAX,
    TIMEOUT_SECONDS_MAX,
    TRANSFERS_PER_BATCH_MAX,
    Account,
    AccountFlags,
    AccountKind,
    AccountResult,
    Balance,
    BatchTooLarge,
    Hold,
    HoldState,
    NewAccount,
    NewTransfer,
    Page,
    Transfer,
    TransferFlags,
    TransferResult,
)
from danbao.ledger.results import ReadCode, Result

__all__ = [
    "PAGE_LIMIT_MAX",
    "TIMEOUT_SECONDS_MAX",
    "TRANSFERS_PER_BATCH_MAX",
    "Account",
    "AccountFlags",
    "AccountKind",
    "AccountResult",
    "AuditReport",
    "Balance",
    "BatchTooLarge",
    "Hold",
    "HoldState",
    "JournalHead",
    "Ledger",
    "NewAccount",
    "NewTransfer",
    "Page",
    "ReadCode",
    "Result",
    "Transfer",
    "TransferFlags",
    "TransferResult",
    "audit",
]
