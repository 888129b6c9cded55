"""Parties and their money outside trades: sign-up, wallet top-up and withdrawal, the direct
seller's security deposit and debt, and funding the platform's insurance pool."""

from __future__ import annotations

import re

from danbao.ids import Ids
from danbao.ledger import Ledger, NewTransfer
from danbao.ledger.transaction import LedgerTransaction
from danbao.money import AMOUNT_MAX_MINOR, CURRENCIES
from danbao.store.errors import IntegrityViolation
from danbao.store.raw import Raw
from danbao.text import storable
from danbao.trade import accounts, repository
from danbao.trade.config import TradeConfig
from danbao.trade.errors import TradeCode, TradeError, with_article
from danbao.trade.model import NAME_CHARS_MAX, Party, Role
from danbao.trade.step import move_money

PARTY_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}\Z")  # \Z: `$` admits a trailing newline


def check_amount(amount: object, field: str = "amount") -> int:
    if type(amount) is not int or not 0 < amount <= AMOUNT_MAX_MINOR:
        raise TradeError(TradeCode.amount_invalid, f"{field} must be a whole number of minor units, 1 to {AMOUNT_MAX_MINOR}", field=field)
    return amount


def check_currency(currency: object) -> str:
    if currency not in CURRENCIES:
        raise TradeError(TradeCode.currency_unknown, f"unknown currency {currency!r}", field="currency")
    return str(currency)


def load_party(raw: Raw, party_id: str, *, role: Role | None = None, field: str = "party_id", acting: bool = False) -> Party:
    return load_parties(raw, [(party_id, role, field)], acting=field if acting else None)[0]


def load_parties(raw: Raw, wanted: list[tuple[str, Role | None, str]], *, acting: str | None = None) -> list[Party]:
    """Parties by (id, role required, field at fault), in one query; refused in order.

    `acting` is the field of the party doing what is asked. That party in another role is
    `role_forbidden`: its role does not allow the act, as in the transition tables. Any
    other party in the wrong role is `role_invalid`: the request named the wrong party."""
    found = repository.parties(raw, [party_id for party_id, _, _ in wanted])  # skips what cannot be an id
    return [_checked(found.get(party_id) if isinstance(party_id, str) else None, party_id, role, field, field == acting) for party_id, role, field in wanted]


def _checked(found: Party | None, party_id: str, role: Role | None, field: str, acting: bool) -> Party:
    if found is None:
        raise TradeError(TradeCode.party_not_found, f"no party {party_id!r}", field=field)
    if role is not None and found.role != role.value:
        if acting:
            raise TradeError(TradeCode.role_forbidden, f"{party_id} is {with_article(found.role)}; only {with_article(role.value)} may do this")
        raise TradeError(TradeCode.role_invalid, f"{party_id} is {with_article(found.role)}, not {with_article(role.value)}", field=field)
    return found


def balance(txn: LedgerTransaction, account_id: str) -> int:
    account = txn.accounts([account_id]).get(account_id)
    return account.balance if account is not None else 0


class Parties:
    def __init__(self, ledger: Ledger, config: TradeConfig, ids: Ids):
        self.ledger = ledger
        self.config = config
        self.ids = ids

    def create(self, role: str, name: str, *, party_id: str | None = None, cash_limit: int | None = None) -> Party:
        if role not in Role.__members__:
            raise TradeError(TradeCode.role_invalid, f"role must be one of {', '.join(Role.__members__)}", field="role")
        if not storable(name) or not 0 < len(name.strip()) <= NAME_CHARS_MAX:
            raise TradeError(TradeCode.name_invalid, f"name must be 1 to {NAME_CHARS_MAX} characters", field="name")
        party_id = party_id if party_id is not None else self.ids.new("p")
        if not isinstance(party_id, str) or not PARTY_ID_PATTERN.match(party_id):
            raise TradeError(TradeCode.party_id_invalid, "party ids are 1-32 of a-z 0-9 _ - (starting with a letter or digit)", field="party_id")
        if party_id == accounts.PLATFORM_OWNER:  # its account ids would name the platform's own
            raise TradeError(TradeCode.party_id_invalid, f"{party_id!r} is reserved for the platform's own accounts", field="party_id")
        if cash_limit is not None and (type(cash_limit) is not int or not 0 <= cash_limit <= AMOUNT_MAX_MINOR):
            raise TradeError(TradeCode.amount_invalid, "cash_limit must be 0 or more minor units", field="cash_limit")
        if role == Role.courier.value and cash_limit is None:
            cash_limit = self.config.courier_cash_limit

        def work(txn: LedgerTransaction) -> Party:
            if repository.parties(txn.raw, [party_id]):
                raise TradeError(TradeCode.party_exists, f"party {party_id} exists", field="party_id")
            party = Party(party_id, role, name.strip(), cash_limit, 0, txn.now_ns)
            repository.insert_party(txn.raw, party)
            return party

        try:
            return self.ledger.transaction(work)
        except IntegrityViolation as error:  # pragma: no cover - the head lock orders creators
            raise TradeError(TradeCode.party_exists, f"party {party_id} exists", field="party_id") from error

    def get(self, party_id: str) -> Party:
        found = self.ledger.db.read_raw(lambda raw: repository.parties(raw, [party_id])).get(party_id)
        if found is None:
            raise TradeError(TradeCode.party_not_found, f"no party {party_id!r}", field="party_id")
        return found

    def _transfer(self, party_id: str, debit: str, credit: str, amount: int, code: str, *, role: Role | None = None, guard=None) -> str:  # type: ignore[no-untyped-def]
        check_amount(amount)
        transfer_id = self.ids.new("m")

        def work(txn: LedgerTransaction) -> str:
            load_party(txn.raw, party_id, role=role, acting=True)
            if guard is not None:
                guard(txn)
            move_money(txn, [NewTransfer(transfer_id, debit, credit, amount, debit.rsplit(".", 1)[1], code=code, ref=party_id)])
            return transfer_id

        return self.ledger.transaction(work)

    def top_up(self, party_id: str, amount: int, currency: str) -> str:
        """Money in from the bank to the party's wallet (how tests and the demo fund buyers)."""
        currency = check_currency(currency)
        return self._transfer(party_id, accounts.platform("bank", currency), accounts.owned(party_id, "wallet", currency), amount, "wallet.top_up")

    def withdraw(self, party_id: str, amount: int, currency: str) -> str:
        currency = check_currency(currency)
        return self._transfer(party_id, accounts.owned(party_id, "wallet", currency), accounts.platform("bank", currency), amount, "wallet.withdraw")

    def send(self, payer_id: str, payee_id: str, amount: int, currency: str) -> str:
        """Wallet to wallet between two parties."""
        currency = check_currency(currency)
        if payer_id == payee_id:
            raise TradeError(TradeCode.parties_must_differ, "a party cannot pay itself", field="to_party_id")

        def payee_exists(txn: LedgerTransaction) -> None:
            load_party(txn.raw, payee_id, field="to_party_id")

        return self._transfer(payer_id, accounts.owned(payer_id, "wallet", currency), accounts.owned(payee_id, "wallet", currency), amount, "wallet.transfer", guard=payee_exists)

    def deposit(self, seller_id: str, amount: int, currency: str) -> str:
        """Wallet -> security deposit: what lets a seller sell direct."""
        currency = check_currency(currency)
        return self._transfer(seller_id, accounts.owned(seller_id, "wallet", currency), accounts.owned(seller_id, "deposit", currency), amount, "deposit.top_up", role=Role.seller)

    def withdraw_deposit(self, seller_id: str, amount: int, currency: str) -> str:
        currency = check_currency(currency)

        def guard(txn: LedgerTransaction) -> None:
            if repository.seller_answers_for_claims(txn.raw, seller_id, currency):
                raise TradeError(TradeCode.deposit_locked, "a claim may still arrive on one of this seller's direct trades")

        return self._transfer(seller_id, accounts.owned(seller_id, "deposit", currency), accounts.owned(seller_id, "wallet", currency), amount, "deposit.withdraw", role=Role.seller, guard=guard)

    def repay_debt(self, seller_id: str, amount: int, currency: str) -> str:
        """Wallet -> the seller's debt to the insurance pool (never more than is owed)."""
        currency = check_currency(currency)
        return self._transfer(seller_id, accounts.owned(seller_id, "wallet", currency), accounts.owned(seller_id, "debt", currency), amount, "debt.repay", role=Role.seller)

    def fund_insurance(self, operator_id: str, amount: int, currency: str) -> str:
        """The operator puts money into the insurance pool from the platform's bank."""
        currency = check_currency(currency)
        return self._transfer(operator_id, accounts.platform("bank", currency), accounts.platform("insurance", currency), amount, "insurance.fund", role=Role.operator)
