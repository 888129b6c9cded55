"""The README's Python examples run as written: on a fresh directory, and the HTTP client's
against a live server."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from danbao.api import webhooks
from danbao.api.idempotency import KEEP_SECONDS
from danbao.api.signature import SIGNATURE_HEADER, sign
from danbao.bench.api_bench import ServerProcess
from danbao.ledger.model import PAGE_LIMIT_MAX

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
DOCUMENTED_URL = "http://127.0.0.1:8000"
RECEIVER = "def webhook_event("
EXAMPLE_SECONDS_MAX = 60


def test_the_readme_has_its_examples() -> None:
    assert len(BLOCKS) == 4, "a block was added or removed: give it a test here"


def test_the_bounds_the_readme_states_are_the_ones_the_code_keeps() -> None:
    prose = " ".join(README.split())  # phrases may wrap across lines
    for phrase in (
        f"({webhooks.ATTEMPTS_MAX} attempts, {webhooks.RETRY_BACKOFF_BASE_SECONDS} s apart at first, doubling to at most "
        f"{webhooks.RETRY_BACKOFF_MAX_SECONDS // 3600} hour apart)",
        f"An attempt gets {webhooks.DELIVERY_TIMEOUT_SECONDS:g} s per network step and {webhooks.ATTEMPT_DEADLINE_SECONDS:g} s in all",
        f"a pass takes at most {webhooks.DELIVERIES_PER_ENDPOINT_PER_PASS_MAX} of one endpoint's deliveries",
        f"Keys are kept {KEEP_SECONDS // 3600} hours per party",
        f"`limit` is 1 to {PAGE_LIMIT_MAX:,}",
    ):
        assert phrase in prose, phrase
    assert webhooks.RETRY_BACKOFF_MAX_SECONDS % 3600 == 0


@pytest.mark.parametrize("block", [b for b in BLOCKS if DOCUMENTED_URL not in b and RECEIVER not in b], ids=["ledger", "trades"])
def test_a_library_example_runs_in_a_fresh_directory_and_its_process_ends(block: str, tmp_path: Path) -> None:
    # A process of its own: the example must also end (no thread of the ledger's left
    # holding the interpreter open) without closing anything it was not shown to close.
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=EXAMPLE_SECONDS_MAX)
    assert done.returncode == 0, done.stderr


def test_the_client_example_runs_against_a_fresh_server(tmp_path: Path) -> None:
    [block] = [b for b in BLOCKS if DOCUMENTED_URL in b]
    server = ServerProcess("danbao", f"sqlite:///{tmp_path / 'api.db'}")
    try:
        exec(compile(block.replace(DOCUMENTED_URL, server.url), "README.md", "exec"), {"admin_key": server.admin_key})
    finally:
        server.stop()


def test_the_receiver_example_accepts_a_signed_delivery_and_refuses_a_tampered_one() -> None:
    [block] = [b for b in BLOCKS if RECEIVER in b]
    scope: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), scope)
    webhook_event = scope["webhook_event"]
    body = b'{"type": "trade.paid", "data": {"amount": 12800}}'
    headers = httpx.Headers({SIGNATURE_HEADER: sign("whsec_x", int(time.time()), body)})
    assert webhook_event("whsec_x", headers, body) == {"type": "trade.paid", "data": {"amount": 12800}}
    for secret, headers_, body_ in (
        ("whsec_y", headers, body),
        ("whsec_x", headers, body.replace(b"12800", b"1")),
        ("whsec_x", httpx.Headers({}), body),
        ("whsec_x", httpx.Headers({SIGNATURE_HEADER: sign("whsec_x", int(time.time()) - 3600, body)}), body),
    ):
        with pytest.raises(PermissionError):
            webhook_event(secret, headers_, body_)
