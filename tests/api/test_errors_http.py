"""Bad requests get 4xx problem+json with a stable code and the field at fault, never 500,
and change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from danbao.api.query import NAME_SHOWN_CHARS_MAX
from danbao.client import ApiError
from danbao.ledger.model import PAGE_LIMIT_MAX
from tests.api.conftest import Live

CUR = "CNY"


@pytest.fixture
def ann(live: Live) -> httpx.Client:
    live.party("buyer", "ann")
    live.party("seller", "tea")
    key = live.admin.issue_key("ann").key
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def admin(live: Live) -> httpx.Client:
    """The operator's admin key, as `danbao serve` set it up."""
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {live.admin_key}"})


def _operations(admin: httpx.Client) -> dict[str, dict[str, object]]:
    """The served OpenAPI document's operations, by path."""
    return admin.get("/openapi.json").json()["paths"]


def _with_ids(path: str) -> str:
    """`path` with an id, `x`, in every {placeholder}."""
    return "/".join("x" if part.startswith("{") else part for part in path.split("/"))


def problem_of(response: httpx.Response) -> tuple[int, str, str | None]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]
    return response.status_code, body["code"], body.get("field")


CASES = [
    ("malformed JSON", "/v1/wallet/top-up", b'{"amount": 5', (400, "body_invalid", None)),
    ("not an object", "/v1/wallet/top-up", b"[1, 2]", (400, "request_invalid", None)),
    ("missing amount", "/v1/wallet/top-up", b'{"currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("amount as string", "/v1/wallet/top-up", b'{"amount": "100", "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("amount as float", "/v1/wallet/top-up", b'{"amount": 1.5, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("amount as bool", "/v1/wallet/top-up", b'{"amount": true, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("zero amount", "/v1/wallet/top-up", b'{"amount": 0, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("negative amount", "/v1/wallet/top-up", b'{"amount": -5, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("huge amount", "/v1/wallet/top-up", b'{"amount": 10000000000000000000000, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("unknown currency", "/v1/wallet/top-up", b'{"amount": 5, "currency": "XYZ"}', (400, "currency_unknown", "currency")),
    ("lower-case currency", "/v1/wallet/top-up", b'{"amount": 5, "currency": "cny"}', (400, "currency_unknown", "currency")),
    ("extra field", "/v1/wallet/top-up", b'{"amount": 5, "currency": "CNY", "to": "x"}', (400, "request_invalid", "to")),
    ("unknown model", "/v1/trades", b'{"seller_id": "tea", "model": "barter", "amount": 5, "currency": "CNY"}', (400, "model_unknown", "model")),
    ("unknown seller", "/v1/trades", b'{"seller_id": "nobody", "model": "escrow", "amount": 5, "currency": "CNY"}', (404, "party_not_found", "seller_id")),
    ("trade: malformed JSON", "/v1/trades", b'{"seller_id": "tea"', (400, "body_invalid", None)),
    ("trade: not an object", "/v1/trades", b'["tea"]', (400, "request_invalid", None)),
    ("trade: no body", "/v1/trades", b"", (400, "request_invalid", None)),
    ("trade: null body", "/v1/trades", b"null", (400, "request_invalid", None)),
    ("trade: not UTF-8", "/v1/trades", b'{"seller_id": "\xff"}', (400, "body_invalid", None)),
    ("trade: amount as float", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 1.5, "currency": "CNY"}', (400, "amount_invalid", "amount")),
    ("trade: amount 5.0 is 5, currency unknown", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5.0, "currency": "XYZ"}', (400, "currency_unknown", "currency")),
    ("a field only another operation takes", "/v1/trades/t_missing/refuse", b'{"method": "cash"}', (400, "request_invalid", "method")),
    ("a field only another model takes", "/v1/wallet/top-up", b'{"amount": 5, "currency": "CNY", "reason": "counterfeit"}', (400, "request_invalid", "reason")),
    ("trade: extra field", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY", "fee": 0}', (400, "request_invalid", "fee")),
    ("trade: items not a list", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY", "items": {}}', (400, "items_invalid", "items")),
    ("ship: courier as number", "/v1/trades/t_missing/ship", b'{"courier_id": 7}', (400, "request_invalid", "courier_id")),
    ("arbitrate: unknown decision", "/v1/trades/t_missing/arbitrate", b'{"decision": "split"}', (400, "decision_invalid", "decision")),
    ("collect: unknown method", "/v1/trades/t_missing/collect", b'{"method": "cheque"}', (400, "collect_method_invalid", "method")),
    ("claim: unknown reason", "/v1/trades/t_missing/claim", b'{"reason": "bored", "evidence": "photos"}', (400, "claim_reason_invalid", "reason")),
    ("claim: empty evidence", "/v1/trades/t_missing/claim", b'{"reason": "counterfeit", "evidence": ""}', (400, "evidence_invalid", "evidence")),
    ("unknown trade", "/v1/trades/t_missing/pay", b"{}", (404, "trade_not_found", "trade_id")),
    ("unknown trade, optional body left out", "/v1/trades/t_missing/ship", b"", (404, "trade_not_found", "trade_id")),
    ("unknown route", "/v1/nothing", b"{}", (404, "not_found", None)),
    ("duplicate key", "/v1/wallet/top-up", b'{"amount": 5, "currency": "CNY", "amount": 500000}', (400, "body_invalid", None)),
    ("NaN is not JSON", "/v1/wallet/top-up", b'{"amount": NaN, "currency": "CNY"}', (400, "body_invalid", None)),
    ("nested too deep", "/v1/wallet/top-up", b"[" * 20_000 + b"]" * 20_000, (400, "body_invalid", None)),
    ("trade: duplicate key", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "amount": 9, "currency": "CNY"}', (400, "body_invalid", None)),
    ("trade: duplicate key in an item", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY", "items": [{"name": "a", "name": "b"}]}', (400, "body_invalid", None)),
    ("trade: Infinity is not JSON", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": Infinity, "currency": "CNY"}', (400, "body_invalid", None)),
    ("trade: an unpaired surrogate", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY", "items": [{"s": "\\ud800"}]}', (400, "body_invalid", None)),
    ("trade: a number too large to be finite", "/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY", "items": [{"n": 1e999}]}', (400, "body_invalid", None)),
    ("an unpaired surrogate anywhere", "/v1/wallet/top-up", b'{"amount": 5, "currency": "\\udfff"}', (400, "body_invalid", None)),
    ("trade: nested too deep", "/v1/trades", b"[" * 20_000 + b"]" * 20_000, (400, "body_invalid", None)),
    ("ship: nested too deep", "/v1/trades/t_missing/ship", b'{"courier_id": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", (400, "body_invalid", None)),
    ("webhook URL with a NUL", "/v1/webhook-endpoints", b'{"url": "http://127.0.0.1:9/a\\u0000b", "event_types": ["*"]}', (400, "url_invalid", "url")),
    ("webhook URL without a host", "/v1/webhook-endpoints", b'{"url": "http:///hook", "event_types": ["*"]}', (400, "url_invalid", "url")),
    ("webhook URL with a bad port", "/v1/webhook-endpoints", b'{"url": "http://hooks.example:99999/", "event_types": ["*"]}', (400, "url_invalid", "url")),
    # The same mistakes, caught by the body's schema before the webhooks see them: the same codes.
    ("webhook URL not http(s)", "/v1/webhook-endpoints", b'{"url": "ftp://hooks.example/x", "event_types": ["*"]}', (400, "url_invalid", "url")),
    ("webhook URL not a string", "/v1/webhook-endpoints", b'{"url": 5, "event_types": ["*"]}', (400, "url_invalid", "url")),
    ("webhook URL too short", "/v1/webhook-endpoints", b'{"url": "http://", "event_types": ["*"]}', (400, "url_invalid", "url")),
    ("no event type", "/v1/webhook-endpoints", b'{"url": "https://hooks.example/x", "event_types": []}', (400, "event_types_invalid", "event_types")),
    ("an unknown event type", "/v1/webhook-endpoints", b'{"url": "https://hooks.example/x", "event_types": ["trade.paid", "nope"]}', (400, "event_types_invalid", "event_types.1")),
    ("event types not a list", "/v1/webhook-endpoints", b'{"url": "https://hooks.example/x", "event_types": "trade.paid"}', (400, "event_types_invalid", "event_types")),
    ("withdraw too much", "/v1/wallet/withdraw", b'{"amount": 5, "currency": "CNY"}', (422, "insufficient_funds", None)),
]


@pytest.mark.parametrize(("label", "path", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_requests_are_refused_with_a_code(live: Live, ann: httpx.Client, label: str, path: str, body: bytes, expected: tuple) -> None:  # type: ignore[type-arg]
    before = live.admin.audit()
    response = ann.post(path, content=body, headers={"Content-Type": "application/json"})
    assert problem_of(response) == expected
    after = live.admin.audit()
    assert after.transfers_checked == before.transfers_checked and after.ok


def test_the_platform_owners_name_is_no_party_id(live: Live) -> None:
    before = live.admin.audit()
    with pytest.raises(ApiError) as refused:
        live.admin.create_party("buyer", "Mallory", id="platform")
    assert (refused.value.status, refused.value.code, refused.value.field) == (400, "party_id_invalid", "id")
    with pytest.raises(ApiError) as missing:
        live.admin.request("GET", "/v1/parties/platform")
    assert missing.value.status == 404
    assert live.admin.audit().transfers_checked == before.transfers_checked


BEYOND_BIGINT = str(2**63)


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/trades?after={BEYOND_BIGINT}:t_x",
        f"/v1/events?after={BEYOND_BIGINT}:t_x:1",
        f"/v1/events?after=1:t_x:{BEYOND_BIGINT}",
        f"/v1/accounts/ann.wallet.CNY/transfers?after={BEYOND_BIGINT}",
        "/v1/trades?after=99999999999999999999:t_x",
        f"/v1/disputes?after={BEYOND_BIGINT}:t_x",
    ],
)
def test_a_cursor_beyond_what_a_column_holds_is_invalid_not_a_500(ann: httpx.Client, path: str) -> None:
    ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR})
    assert problem_of(ann.get(path)) == (400, "cursor_invalid", "after")


NOT_FOUND_BY_KIND = {"trade_id": "trade_not_found", "party_id": "party_not_found", "account_id": "account_not_found",
                     "key_id": "key_not_found", "endpoint_id": "endpoint_not_found"}


@pytest.mark.parametrize("bogus", ["a%00b", "%FF", "%ED%A0%80"])
def test_an_id_no_store_can_hold_is_not_found_on_every_route(live: Live, ann: httpx.Client, bogus: str, admin: httpx.Client) -> None:
    """A NUL (PostgreSQL's text refuses it) or bytes that are not UTF-8, in any id of any
    route, is an unknown id: the same 404 on both backends, never a store error."""
    before = live.admin.audit()
    seen: set[int] = set()
    routes = [(path, method) for path, ops in _operations(admin).items() if "{" in path for method in ops]
    assert len(routes) >= 20  # every trade operation, parties, keys, accounts, webhooks
    for path, method in routes:
        [name] = [part.strip("{}") for part in path.split("/") if part.startswith("{")]
        for client in (admin, ann):
            url = path.replace("{" + name + "}", bogus)
            response = client.get(url) if method == "get" else client.post(url, json={})
            status, code, field = problem_of(response)
            # 404 as for any unknown id; or a body missing what the route needs, refused first
            assert (status, code) in ((404, NOT_FOUND_BY_KIND[name]), (403, "role_forbidden")) or (status == 400 and field not in (None, name)), (method, path, response.text)
            seen.add(status)
    assert 404 in seen
    after = live.admin.audit()
    assert after.transfers_checked == before.transfers_checked and after.ok


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"role": "buyer", "name": "X", "id": "Bad Id"}', (400, "party_id_invalid", "id")),  # the body's schema refuses it
    (b'{"role": "buyer", "name": "X", "id": 5}', (400, "party_id_invalid", "id")),
    (b'{"role": "buyer", "name": "X", "id": "platform"}', (400, "party_id_invalid", "id")),  # the trade engine refuses it
    (b'{"role": "buyer", "name": "X", "id": "ann"}', (409, "party_exists", "id")),
    (b'{"role": "king", "name": "X"}', (400, "role_invalid", "role")),
    (b'{"role": "buyer", "name": ""}', (400, "name_invalid", "name")),
    (b'{"role": "buyer", "name": 5}', (400, "name_invalid", "name")),
    (b'{"role": "courier", "name": "X", "cash_limit": -5}', (400, "amount_invalid", "cash_limit")),
    (b'{"role": "courier", "name": "X", "cash_limit": "5"}', (400, "amount_invalid", "cash_limit")),
])
def test_a_party_refused_names_the_body_member_at_fault_with_one_code_however_it_is_caught(live: Live, ann: httpx.Client, body: bytes, expected: tuple, admin: httpx.Client) -> None:  # type: ignore[type-arg]
    def parties() -> list[tuple[str, str]]:
        return live.services.db.read_raw(lambda raw: raw.rows("SELECT id, name FROM parties ORDER BY id"))

    before = parties()
    assert problem_of(admin.post("/v1/parties", content=body, headers={"Content-Type": "application/json"})) == expected
    assert parties() == before


def test_operations_without_parameters_refuse_a_body_with_members(live: Live, ann: httpx.Client, admin: httpx.Client) -> None:
    refused = admin.post("/v1/parties/ann/keys", json={"expires_in": 60})
    assert problem_of(refused) == (400, "request_invalid", "expires_in")
    assert admin.post("/v1/parties/ann/keys", json={}).status_code == 201


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/trades", b'{"seller_id": "tea", "model": "escrow", "amount": 5, "currency": "CNY"}'),  # a body read by hand
    ("/v1/wallet/top-up", b'{"amount": 500, "currency": "CNY"}'),  # a body FastAPI reads
])
def test_a_body_must_say_it_is_json_or_it_is_415(ann: httpx.Client, path: str, body: bytes) -> None:
    no_type = ann.build_request("POST", path, content=body)  # raw bytes: httpx names no type
    assert "content-type" not in no_type.headers
    assert problem_of(ann.send(no_type)) == (415, "media_type_unsupported", "Content-Type")
    for media in ("text/plain", "application/x-www-form-urlencoded", "application/xml", "text/vnd.example+json"):
        assert problem_of(ann.post(path, content=body, headers={"Content-Type": media})) == (415, "media_type_unsupported", "Content-Type")
    chunked = ann.build_request("POST", path, content=iter([body]), headers={"Content-Type": "text/plain"})
    assert "content-length" not in chunked.headers and chunked.headers["transfer-encoding"] == "chunked"
    assert problem_of(ann.send(chunked)) == (415, "media_type_unsupported", "Content-Type")
    assert ann.get("/v1/trades").json()["data"] == [] and _wallet(ann) == 0  # nothing happened
    for media in ("application/json; charset=utf-8", "application/merge-patch+json", "Application/JSON"):
        assert ann.post(path, content=body, headers={"Content-Type": media}).status_code == 201


def _wallet(client: httpx.Client) -> int:
    """The CNY wallet's balance; 0 before it exists (its first top-up opens it)."""
    return sum(a["balance"] for a in client.get("/v1/accounts").json()["data"] if a["kind"] == "wallet" and a["currency"] == "CNY")


def test_an_oversized_body_is_refused_before_any_work(ann: httpx.Client) -> None:
    response = ann.post("/v1/trades", content=b'{"items": "' + b"x" * 70_000 + b'"}', headers={"Content-Type": "application/json"})
    assert problem_of(response)[:2] == (413, "body_too_large")


def test_an_oversized_body_without_a_length_is_cut_off_as_it_streams(live: Live, ann: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"items": "'
        for _ in range(70):
            yield b"x" * 1000  # past the bound before the body ends
        yield b'"}'

    response = ann.post("/v1/trades", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers  # sent chunked: the length was never declared
    assert problem_of(response)[:2] == (413, "body_too_large")
    assert ann.get("/v1/trades").json()["data"] == []


@pytest.mark.parametrize("key", ["k" * 256, "tab\there"], ids=["too long", "not printable"])
def test_a_malformed_idempotency_key_is_refused_and_nothing_happens(live: Live, ann: httpx.Client, key: str) -> None:
    response = ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR}, headers={"Idempotency-Key": key})
    assert problem_of(response) == (400, "idempotency_key_invalid", "Idempotency-Key")
    assert live.services.ledger.account("ann.wallet.CNY") is None


def test_an_idempotency_key_of_the_most_characters_allowed_is_taken(live: Live, ann: httpx.Client) -> None:
    from danbao.api.idempotency import KEY_CHARS_MAX

    response = ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR}, headers={"Idempotency-Key": "k" * KEY_CHARS_MAX})
    assert response.status_code == 201
    assert ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR}, headers={"Idempotency-Key": "k" * KEY_CHARS_MAX}).json() == response.json()
    assert _wallet(ann) == 5


def test_a_key_on_a_method_that_is_not_post_is_not_kept(live: Live, ann: httpx.Client) -> None:
    body = {"amount": 5, "currency": CUR}
    wrong = ann.request("DELETE", "/v1/wallet/top-up", json=body, headers={"Idempotency-Key": "k-1"})
    assert problem_of(wrong)[:2] == (405, "method_not_allowed")
    right = ann.post("/v1/wallet/top-up", json=body, headers={"Idempotency-Key": "k-1"})  # not a replay of the 405
    assert right.status_code == 201 and "idempotent-replayed" not in right.headers
    assert _wallet(ann) == 5


def test_no_key_and_bad_keys_are_401(live: Live) -> None:
    plain = httpx.Client(base_url=live.url)
    missing = plain.get("/v1/accounts")
    assert problem_of(missing)[:2] == (401, "auth_required")
    assert missing.headers["www-authenticate"] == 'Bearer realm="danbao"'  # the scheme to use
    for header in ("Bearer nonsense", "Bearer dbk_abc_def", "Basic dXNlcjpwYXNz"):
        refused = plain.get("/v1/accounts", headers={"Authorization": header})
        assert problem_of(refused)[0] == 401
        assert refused.headers["www-authenticate"].startswith('Bearer realm="danbao"')
    assert 'error="invalid_token"' in plain.get("/v1/accounts", headers={"Authorization": "Bearer dbk_abc_def"}).headers["www-authenticate"]
    posted = plain.post("/v1/trades/t_1/pay", content=b"{}", headers={"Content-Type": "application/json"})  # a direct route, too
    assert problem_of(posted)[0] == 401 and "www-authenticate" in posted.headers
    # A valid key counts only as a bearer token (the scheme's name in any case), not under another scheme.
    for scheme, accepted in (("Basic", False), ("Token", False), ("bearer", True), ("BEARER", True)):
        headers = {"Authorization": f"{scheme} {live.admin_key}"}
        listed = plain.get("/v1/accounts", headers=headers)  # a thread-pool route
        paid = plain.post("/v1/trades/t_1/pay", headers=headers)  # an async one: past the key, no such trade
        assert (listed.status_code, paid.status_code) == ((200, 404) if accepted else (401, 401)), scheme


def test_every_route_refuses_a_query_parameter_it_does_not_declare_before_doing_anything(live: Live, ann: httpx.Client, admin: httpx.Client) -> None:
    before = live.admin.audit()
    routes = [(path, method) for path, ops in _operations(admin).items() for method in ops]
    assert len(routes) >= 30
    for path, method in routes:
        url = _with_ids(path)
        for client in (admin, ann):
            response = client.request(method.upper(), url, params={"limt": "10"}, json={} if method == "post" else None)
            assert problem_of(response) == (400, "parameter_unknown", "limt"), (method, path)
    assert live.admin.audit() == before


def test_every_paged_list_refuses_a_page_size_out_of_its_bounds_as_limit_invalid(admin: httpx.Client) -> None:
    """The ledger's and the trade engine's own code for a page size (`ReadCode`), however
    the API catches it: 1 to PAGE_LIMIT_MAX, whole numbers only."""
    paged = [path for path, ops in _operations(admin).items() if any(p["name"] == "limit" for p in ops.get("get", {}).get("parameters", ()))]
    assert len(paged) >= 8
    for path in paged:
        url = _with_ids(path)
        for limit in ("0", str(PAGE_LIMIT_MAX + 1), "-1", "ten", "1.5"):
            assert problem_of(admin.get(url, params={"limit": limit})) == (400, "limit_invalid", "limit"), (path, limit)
        assert admin.get(url, params={"limit": str(PAGE_LIMIT_MAX)}).status_code in (200, 404), path


def test_a_query_parameter_given_twice_is_refused_and_once_is_read(ann: httpx.Client) -> None:
    for n in range(3):
        ann.post("/v1/wallet/top-up", json={"amount": 5 + n, "currency": CUR})
    assert problem_of(ann.get("/v1/accounts/ann.wallet.CNY/transfers?limit=1&limit=500")) == (400, "parameter_repeated", "limit")
    assert len(ann.get("/v1/accounts/ann.wallet.CNY/transfers", params={"limit": 2}).json()["data"]) == 2


def test_a_long_parameter_name_is_repeated_back_only_in_part(ann: httpx.Client) -> None:
    name = "q" * 1000
    response = ann.get("/v1/trades", params={name: "1"})
    shown = "q" * NAME_SHOWN_CHARS_MAX
    assert problem_of(response) == (400, "parameter_unknown", shown)
    assert shown + "q" not in response.text


def test_an_unknown_parameter_is_answered_with_the_ones_the_route_takes(ann: httpx.Client) -> None:
    listed = ann.get("/v1/trades", params={"limt": "1"}).json()["detail"]
    paid = ann.post("/v1/trades/t_1/pay", params={"limt": "1"}).json()["detail"]
    assert (listed, paid) == ("unknown query parameter 'limt' (this route takes: after, limit)", "unknown query parameter 'limt' (this route takes: none)")


def test_head_is_the_get_it_names_without_the_body(live: Live, ann: httpx.Client) -> None:
    plain = httpx.Client(base_url=live.url)
    ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR})
    for client, path in ((plain, "/healthz"), (ann, "/v1/trades"), (ann, "/v1/accounts/ann.wallet.CNY/balance")):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (got.status_code, b"")
        assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == got.headers["content-type"]
    refused = plain.head("/v1/trades")  # no key: the same 401 as a GET, without its body
    assert (refused.status_code, refused.content, refused.headers["content-type"]) == (401, b"", "application/problem+json")
    only_post = ann.head("/v1/wallet/top-up")
    assert only_post.status_code == 405 and only_post.headers["allow"] == "POST"
    assert ann.post("/v1/trades/t_x", json={}).headers["allow"] == "GET, HEAD"
    metrics = plain.get("/metrics").text
    assert 'danbao_http_requests_total{method="HEAD",route="/v1/trades",status="200"} 1.0' in metrics


def test_every_operation_is_described_and_trade_operations_say_who_may_from_the_tables(live: Live) -> None:
    from danbao.trade.machine import SYSTEM, TABLE

    paths = httpx.get(f"{live.url}/openapi.json").json()["paths"]
    undescribed = [(m, p) for p, ops in paths.items() for m, op in ops.items() if not op.get("description")]
    assert undescribed == []
    rows = 0
    for model, rules in TABLE.items():
        for (status, action), rule in rules.items():
            parties = sorted(rule.actors - {SYSTEM})
            if not parties:
                continue  # the worker's rows: no operation of the API
            path = "/v1/trades/{trade_id}/" + ("return" if action.value == "return_goods" else action.value.replace("_", "-"))
            described = paths[path]["post"]["description"]
            assert f"- {model.value}: the {' or the '.join(parties)}, from `{status.value}` to " in described, (path, model, status)
            rows += 1
    assert rows >= 25


def test_health_and_metrics_and_the_openapi_document(live: Live, ann: httpx.Client) -> None:
    plain = httpx.Client(base_url=live.url)
    assert plain.get("/healthz").json() == {"status": "ok"}
    ann.post("/v1/wallet/top-up", json={"amount": 5, "currency": CUR})
    for n in range(3):  # the labels come from bounded sets, whatever clients send
        plain.request("PURGE", f"/nowhere/{n}")
        ann.get(f"/v1/trades/t_{n}")
    metrics = plain.get("/metrics").text
    assert 'danbao_http_requests_total{method="other",route="unmatched",status="404"} 3.0' in metrics
    assert 'danbao_http_requests_total{method="GET",route="/v1/trades/{trade_id}",status="404"} 3.0' in metrics
    assert "PURGE" not in metrics and "/nowhere" not in metrics and "t_1" not in metrics
    assert 'danbao_http_requests_total{method="POST",route="/v1/wallet/top-up",status="201"} 1.0' in metrics
    assert "danbao_http_request_seconds_bucket" in metrics
    assert "danbao_ledger_transfers_total 1.0" in metrics  # the top-up
    assert "danbao_webhook_deliveries" in metrics
    spec = plain.get("/openapi.json").json()
    assert "/v1/trades/{trade_id}/pay" in spec["paths"] and "/v1/webhook-endpoints" in spec["paths"]
    pay = spec["paths"]["/v1/trades/{trade_id}/pay"]["post"]["responses"]
    assert "WWW-Authenticate" in pay["401"]["headers"] and "Retry-After" in pay["503"]["headers"]


def test_the_problem_docs_api_shows_is_the_one_the_api_answers(ann: httpx.Client) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    shown = json.loads(doc.split("```json\n", 1)[1].split("```", 1)[0])
    trade = ann.post("/v1/trades", json={"seller_id": "tea", "model": "escrow", "amount": 600_00, "currency": "CNY"}).json()
    refused = ann.post(f"/v1/trades/{trade['id']}/pay")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == shown


def test_the_metrics_cache_of_labelled_series_is_bounded_and_the_series_are_kept(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import generate_latest

    from danbao.api import app as app_module

    monkeypatch.setattr(app_module, "METRIC_SERIES_MAX", 3)
    metrics = app_module.Metrics(live.services)
    for status in range(200, 220):
        metrics.observe("GET", "/v1/trades", status, 0.001)
        assert len(metrics._children) <= 4
    scraped = generate_latest(metrics.registry).decode()
    assert all(f'status="{status}"' in scraped for status in range(200, 220))


def _asgi_post(live: Live, headers: list[tuple[bytes, bytes]], messages: list[dict[str, object]]) -> list[dict[str, object]]:
    """A top-up handed to the application as a server would, with what no HTTP client
    sends (a malformed Content-Length, a disconnect mid-body): what the application sent."""
    import asyncio

    from danbao.api import create_app

    app, sent = create_app(live.services), []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http", "path": "/v1/wallet/top-up",
             "raw_path": b"/v1/wallet/top-up", "root_path": "", "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    to_receive = list(messages)

    async def receive() -> dict[str, object]:
        return to_receive.pop(0) if to_receive else {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def _ann_headers(live: Live, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    key = live.admin.issue_key(live.admin.create_party("buyer", "Ann", id="ann").id).key
    return [(b"content-type", b"application/json"), (b"authorization", f"Bearer {key}".encode()), *extra]


@pytest.mark.parametrize("length", [b"-1", b"1e3", b"\xd9\xa1"])
def test_a_content_length_that_is_no_plain_number_is_refused_before_any_work(live: Live, length: bytes) -> None:
    import json

    sent = _asgi_post(live, _ann_headers(live, (b"content-length", length)), [{"type": "http.request", "body": b'{"amount":5,"currency":"CNY"}'}])
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"])["code"] == "body_too_large"  # type: ignore[arg-type]
    assert live.services.ledger.account("ann.wallet.CNY") is None


@pytest.mark.parametrize("key", [None, b"k1"], ids=["no key", "keyed"])
def test_a_request_whose_client_leaves_before_its_body_ends_does_nothing(live: Live, key: bytes | None) -> None:
    whole = b'{"amount":5,"currency":"CNY"}'  # whole JSON already: the rest never comes
    headers = _ann_headers(live, *([(b"idempotency-key", key)] if key else []))
    assert _asgi_post(live, headers, [{"type": "http.request", "body": whole, "more_body": True}, {"type": "http.disconnect"}]) == []
    assert live.services.ledger.account("ann.wallet.CNY") is None


@pytest.mark.parametrize("streamed", [False, True], ids=["declared", "streamed"])
def test_a_body_of_exactly_the_bound_is_taken_and_one_byte_more_is_not(ann: httpx.Client, streamed: bool) -> None:
    from danbao.api.app import BODY_BYTES_MAX

    move = b'{"amount": 5, "currency": "CNY"}'

    def sent(size: int):  # type: ignore[no-untyped-def]
        body = move + b" " * (size - len(move))  # JSON allows the whitespace
        return (body[i : i + 4096] for i in range(0, len(body), 4096)) if streamed else body

    taken = ann.post("/v1/wallet/top-up", content=sent(BODY_BYTES_MAX), headers={"Content-Type": "application/json"})
    assert taken.status_code == 201, taken.text
    refused = ann.post("/v1/wallet/top-up", content=sent(BODY_BYTES_MAX + 1), headers={"Content-Type": "application/json"})
    assert problem_of(refused)[:2] == (413, "body_too_large")
    assert _wallet(ann) == 5


def test_every_schema_the_openapi_document_refers_to_is_in_it_and_errors_have_one(live: Live) -> None:
    import re

    spec = httpx.get(f"{live.url}/openapi.json").json()
    schemas = spec["components"]["schemas"]
    referred = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert "Problem" in referred and referred <= set(schemas), sorted(referred - set(schemas))
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "code", "detail"}
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)  # FastAPI's own error shape: never answered


def test_the_openapi_document_says_which_trade_operations_may_be_sent_without_a_body(live: Live, ann: httpx.Client) -> None:
    paths = httpx.get(f"{live.url}/openapi.json").json()["paths"]
    optional = paths["/v1/trades/{trade_id}/pay"]["post"]["requestBody"]
    assert optional["required"] is False
    assert optional["content"]["application/json"]["schema"]["anyOf"] == [{"$ref": "#/components/schemas/NoBody"}, {"type": "null"}]
    required = paths["/v1/trades/{trade_id}/arbitrate"]["post"]["requestBody"]
    assert required["required"] is True
    assert required["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ArbitrateIn"}
    # As documented: the one may be sent with no body at all, the other may not.
    assert problem_of(ann.post("/v1/trades/nope/pay"))[:2] == (404, "trade_not_found")
    assert problem_of(ann.post("/v1/trades/nope/arbitrate"))[:2] == (400, "request_invalid")
