"""Traffic for the fault tests: buyers with keys, answers counted across their threads
toward the moment of a fault, and the wallet balances checked afterwards."""

from __future__ import annotations

import threading

from danbao.client import Danbao


class Answers:
    """Answers counted across the callers' threads; `enough` is set at the fault's count."""

    def __init__(self, enough_at: int):
        self.enough_at = enough_at
        self.count = 0
        self.lock = threading.Lock()
        self.enough = threading.Event()

    def add(self) -> None:
        with self.lock:
            self.count += 1
            if self.count >= self.enough_at:
                self.enough.set()


def buyers_with_keys(admin: Danbao, count: int) -> dict[str, str]:
    """Buyers b0, b1, ... made by the operator: party id -> API key."""
    keys = {}
    for n in range(count):
        admin.create_party("buyer", f"Buyer {n}", id=f"b{n}")
        keys[f"b{n}"] = admin.issue_key(f"b{n}").key
    return keys


def wallet_balance(client: Danbao, party: str, currency: str) -> int:
    [wallet] = [a for a in client.accounts() if a.id == f"{party}.wallet.{currency}"]
    return wallet.balance
