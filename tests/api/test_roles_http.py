"""Who may do what, over HTTP: every operation tried by every kind of caller.

401 without a valid key; 404 on a trade (or party, account, key) that is not the caller's,
so existence is not revealed; 403 with the wrong role; 2xx for the party whose move it is.
"""

from __future__ import annotations

from collections.abc import Callable

from danbao.api.keys import KEYS_PER_PARTY_MAX
from danbao.client import ApiError, Danbao
from danbao.clock import NS_PER_SECOND
from tests.api.conftest import Live

CUR = "CNY"
CALLERS = ("buyer", "seller", "courier", "arbiter", "operator", "stranger", "nokey", "badkey")

# operation: (model, steps to reach the state it needs, the call, expected status by caller)
TABLE: dict[str, tuple[str, list[tuple[str, str, dict]], Callable[[Danbao, str], object], dict[str, int]]] = {}


def row(name: str, model: str, steps: list[tuple[str, str, dict]], call: Callable[[Danbao, str], object], ok: int = 200, **overrides: int) -> None:
    base = {"buyer": 403, "seller": 403, "courier": 404, "arbiter": 403, "operator": 403, "stranger": 404, "nokey": 401, "badkey": 401}
    if model == "cod" and any(op == "ship" for _, op, _ in steps):
        base["courier"] = 403  # assigned: a party to the trade from shipping on
    base.update(overrides)
    TABLE[name] = (model, steps, call, base | {k: ok for k, v in overrides.items() if v == ok})


PAID = [("buyer", "pay", {})]
SHIPPED = [*PAID, ("seller", "ship", {})]
REQUESTED = [*SHIPPED, ("buyer", "request-refund", {"amount": 1_00})]
REFUSED = [*REQUESTED, ("seller", "refuse-refund", {})]
DISPUTED = [*REFUSED, ("buyer", "dispute", {})]
CLAIMED = [*PAID, ("buyer", "claim", {"reason": "counterfeit", "evidence": "fake"})]
COD_SHIPPED = [("seller", "ship", {"courier_id": "kuai"})]
COD_COLLECTED = [*COD_SHIPPED, ("courier", "collect", {"method": "cash"})]
COD_REMITTED = [*COD_COLLECTED, ("courier", "remit", {})]
COD_REFUSED = [*COD_SHIPPED, ("courier", "refuse", {})]


def op(name: str, **body: object) -> Callable[[Danbao, str], object]:
    return lambda c, t: c.act(t, name, **body)


def in_the_arbiters_queue(c: Danbao, trade_id: str) -> None:
    waiting, _ = c.disputes(limit=1000)
    assert trade_id in {t.id for t in waiting}


row("view", "escrow", [], lambda c, t: c.trade(t), buyer=200, seller=200, arbiter=200, operator=200)
# The queue is no one party's: anyone but an arbiter or operator is refused by role.
row("disputes", "escrow", DISPUTED, in_the_arbiters_queue, arbiter=200, operator=200, courier=403, stranger=403)
row("events", "escrow", [], lambda c, t: c.trade_events(t), buyer=200, seller=200, arbiter=200, operator=200)
row("pay", "escrow", [], op("pay"), buyer=200)
row("cancel", "escrow", [], op("cancel"), buyer=200, seller=200)
row("ship", "escrow", PAID, op("ship"), seller=200)
row("refund", "escrow", PAID, op("refund"), buyer=200)
row("confirm", "escrow", SHIPPED, op("confirm"), buyer=200)
row("extend", "escrow", SHIPPED, op("extend"), buyer=200)
row("request-refund", "escrow", SHIPPED, op("request-refund", amount=1_00), buyer=200)
row("agree-refund", "escrow", REQUESTED, op("agree-refund"), seller=200)
row("refuse-refund", "escrow", REQUESTED, op("refuse-refund"), seller=200)
row("dispute", "escrow", REFUSED, op("dispute"), buyer=200, seller=200)
row("arbitrate", "escrow", DISPUTED, op("arbitrate", decision="release"), arbiter=200)
row("claim", "direct", PAID, op("claim", reason="non_delivery", evidence="none came"), buyer=200)
row("settle-claim", "direct", CLAIMED, op("settle-claim"), seller=200)
row("uphold-claim", "direct", CLAIMED, op("uphold-claim"), arbiter=200)
row("reject-claim", "direct", CLAIMED, op("reject-claim"), arbiter=200)
row("cod-ship", "cod", [], op("ship", courier_id="kuai"), seller=200)
row("collect", "cod", COD_SHIPPED, op("collect", method="card"), courier=200)
row("refuse", "cod", COD_SHIPPED, op("refuse"), courier=200)
row("remit", "cod", COD_COLLECTED, op("remit"), courier=200)
row("settle", "cod", COD_REMITTED, op("settle"), operator=200)
row("return", "cod", COD_REFUSED, op("return"), courier=200)


def test_every_operation_by_every_caller(live: Live) -> None:
    clients = {
        "buyer": live.party("buyer", "ann"), "seller": live.party("seller", "tea"), "courier": live.party("courier", "kuai", cash_limit=10**9),
        "arbiter": live.party("arbiter", "judge"), "operator": live.admin, "stranger": live.party("buyer", "bob"),
        "nokey": live.client(None), "badkey": live.client("dbk_0000_not-a-real-secret"),
    }
    clients["buyer"].top_up(10**8, CUR)
    clients["seller"].top_up(10**8, CUR)
    clients["seller"].deposit(10**6, CUR)
    live.admin.fund_insurance(10**8, CUR)
    mismatches = []
    for name, (model, steps, call, expected) in TABLE.items():
        for caller in CALLERS:
            t = clients["buyer"].create_trade(seller_id="tea", model=model, amount=5_00, currency=CUR)
            for who, step, body in steps:
                clients[who].act(t.id, step, **body)
            before = live.admin.trade(t.id)
            try:
                call(clients[caller], t.id)
                status = 200
            except ApiError as error:
                status = error.status
            if status != expected[caller]:
                mismatches.append((name, caller, status, expected[caller]))
            if status != 200:
                assert live.admin.trade(t.id) == before, (name, caller)
    assert not mismatches, mismatches
    assert live.admin.audit().ok


def test_parties_keys_and_accounts_are_the_callers_own(live: Live) -> None:
    ann, bob, tea, judge = live.party("buyer", "ann"), live.party("buyer", "bob"), live.party("seller", "tea"), live.party("arbiter", "judge")
    ann.top_up(10_00, CUR)
    tea.top_up(10_00, CUR)
    statuses = {}
    for label, call in {
        "create party (buyer)": lambda: ann.create_party("buyer", "Eve", id="eve"),
        "issue key (buyer)": lambda: ann.issue_key("bob"),
        "audit (buyer)": lambda: ann.audit(),
        "fund insurance (buyer)": lambda: ann.fund_insurance(1, CUR),
        "read other party": lambda: bob.request("GET", "/v1/parties/ann"),
        "read own party": lambda: ann.request("GET", "/v1/parties/ann"),
        "read other account": lambda: bob.request("GET", "/v1/accounts/ann.wallet.CNY"),
        "read own account": lambda: ann.request("GET", "/v1/accounts/ann.wallet.CNY"),
        "other's transfers": lambda: bob.request("GET", "/v1/accounts/ann.wallet.CNY/transfers"),
        "other's past balance": lambda: bob.balance_at("ann.wallet.CNY", 0),
        "operator reads any account": lambda: live.admin.request("GET", "/v1/accounts/ann.wallet.CNY"),
        # The caller's own role may not do it: 403, as for a trade operation of another role.
        "buy (seller)": lambda: tea.create_trade(seller_id="tea", model="escrow", amount=1_00, currency=CUR),
        "buy (arbiter)": lambda: judge.create_trade(seller_id="tea", model="escrow", amount=1_00, currency=CUR),
        "deposit (buyer)": lambda: ann.deposit(1_00, CUR),
        "withdraw deposit (buyer)": lambda: ann.request("POST", "/v1/deposit/withdraw", json={"amount": 1_00, "currency": CUR}),
        "repay debt (buyer)": lambda: ann.request("POST", "/v1/debt/repay", json={"amount": 1_00, "currency": CUR}),
        "deposit (seller)": lambda: tea.deposit(1_00, CUR),
    }.items():
        try:
            call()
            statuses[label] = 200
        except ApiError as error:
            statuses[label] = error.status
    assert statuses == {
        "create party (buyer)": 403, "issue key (buyer)": 403, "audit (buyer)": 403, "fund insurance (buyer)": 403,
        "read other party": 404, "read own party": 200, "read other account": 404, "read own account": 200,
        "other's transfers": 404, "other's past balance": 404, "operator reads any account": 200,
        "buy (seller)": 403, "buy (arbiter)": 403, "deposit (buyer)": 403, "withdraw deposit (buyer)": 403, "repay debt (buyer)": 403,
        "deposit (seller)": 200,
    }


def test_a_key_with_a_wrong_secret_is_401_even_right_after_the_right_one_was_used(live: Live) -> None:
    live.admin.create_party("buyer", "Ann", id="ann")
    key = live.admin.issue_key("ann").key
    assert live.client(key).accounts() == []  # verified, and cached
    prefix, secret = key.rsplit("_", 1)
    forged = live.client(f"{prefix}_{secret[::-1] if secret[::-1] != secret else secret + 'x'}")
    try:
        forged.accounts()
        raise AssertionError("a forged secret was taken")
    except ApiError as error:
        assert (error.status, error.code) == (401, "auth_invalid")


def test_keys_can_be_rotated_and_revoked(live: Live) -> None:
    ann = live.party("buyer", "ann")
    [key] = ann.request("GET", "/v1/parties/ann/keys")["data"]
    rotated = ann.rotate_key(key["id"])
    try:
        ann.accounts()
        raise AssertionError("the rotated-out key still works")
    except ApiError as error:
        assert (error.status, error.code) == (401, "auth_invalid")
    fresh = live.client(rotated.key)
    assert fresh.accounts() == []
    revoked = fresh.revoke_key(rotated.id)
    assert (revoked.id, revoked.revoked_at, revoked.key) == (rotated.id, live.clock.now_ns(), None)  # the answer says when
    try:
        fresh.accounts()
        raise AssertionError("a revoked key still works")
    except ApiError as error:
        assert error.status == 401


def test_a_party_cannot_revoke_or_rotate_another_partys_key(live: Live) -> None:
    ann, bob = live.party("buyer", "ann"), live.party("buyer", "bob")
    [bobs] = live.admin.request("GET", "/v1/parties/bob/keys")["data"]
    for act in (ann.rotate_key, ann.revoke_key):
        try:
            act(bobs["id"])  # a rotation would hand ann a fresh key acting as bob
            raise AssertionError(f"{act.__name__} of another party's key was allowed")
        except ApiError as error:
            assert (error.status, error.code) == (404, "key_not_found")
    assert [k["id"] for k in live.admin.request("GET", "/v1/parties/bob/keys")["data"] if k["revoked_at"] is None] == [bobs["id"]]
    assert bob.accounts() == []  # bob's key still works


def test_a_key_is_answered_as_it_is_listed_when_issued_and_when_rotated(live: Live) -> None:
    live.admin.create_party("buyer", "Ann", id="ann")
    live.clock.advance(1)
    issued = live.admin.issue_key("ann")
    live.clock.advance(1)
    rotated = live.admin.rotate_key(issued.id)
    listed = {k["id"]: k for k in live.admin.request("GET", "/v1/parties/ann/keys")["data"]}
    for answer in (issued, rotated):
        assert answer.key is not None and answer.created_at == listed[answer.id]["created_at"] == live.clock.now_ns() - (answer is issued) * NS_PER_SECOND
    assert listed[issued.id]["revoked_at"] == rotated.created_at and listed[rotated.id]["revoked_at"] is None


def _live_key_ids(live: Live, party_id: str) -> set[str]:
    return {k["id"] for k in live.admin.request("GET", f"/v1/parties/{party_id}/keys", params={"limit": 100})["data"] if k["revoked_at"] is None}


def test_a_party_holds_a_bounded_number_of_live_keys(live: Live) -> None:
    live.party("buyer", "ann")  # with its first key
    for _ in range(KEYS_PER_PARTY_MAX - 1):
        live.admin.issue_key("ann")
    held = _live_key_ids(live, "ann")
    assert len(held) == KEYS_PER_PARTY_MAX
    try:
        live.admin.issue_key("ann")
        raise AssertionError("a key past the bound was issued")
    except ApiError as error:
        assert (error.status, error.code) == (400, "keys_limit")
    assert _live_key_ids(live, "ann") == held
    # A rotation at the bound replaces one key with another; a revoked key frees its place.
    some = sorted(held)[0]
    rotated = live.admin.rotate_key(some)
    assert _live_key_ids(live, "ann") == held - {some} | {rotated.id}
    live.admin.revoke_key(rotated.id)
    fresh = live.admin.issue_key("ann")
    assert len(_live_key_ids(live, "ann")) == KEYS_PER_PARTY_MAX
    assert live.client(fresh.key).accounts() == []
