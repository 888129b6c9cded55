"""The server's background loops: jobs and webhooks run apart, so a receiver that holds a
delivery never holds up a trade's timeout."""

from __future__ import annotations

import dataclasses

from danbao.api.background import Background, run_jobs, run_pass
from danbao.api.idempotency import KEEP_SECONDS
from tests.api.conftest import Live
from tests.api.test_webhooks_http import Receiver

WAIT_SECONDS = 30  # a bound on waiting for a pass, far above what one takes


def test_a_receiver_holding_a_delivery_does_not_hold_up_trade_timeouts(live: Live) -> None:
    webhooks = live.services.webhooks
    # Long enough that the receiver, not the sender's timeout, decides when the attempt ends.
    webhooks.settings = dataclasses.replace(webhooks.settings, timeout_seconds=WAIT_SECONDS, deadline_seconds=WAIT_SECONDS)
    receiver = Receiver(["hang"])
    background = Background(live.services, interval_seconds=0.01)
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        ann.register_webhook(receiver.url, ["trade.created"])
        unpaid = ann.create_trade(seller_id="tea", model="escrow", amount=300, currency="CNY")
        background.start()
        assert receiver.hanging.wait(WAIT_SECONDS)  # the webhooks loop is inside a pass
        live.clock.advance(31 * 60)  # past the pay window
        after = background.passes("jobs")
        assert background.wait_for_passes("jobs", after + 2, WAIT_SECONDS)  # a whole pass since
        assert ann.trade(unpaid.id).status == "closed"
        assert background.passes("webhooks") == 0 and not receiver.release.is_set()  # still held
    finally:
        receiver.close()  # lets the held attempt end
        background.stop()


def test_a_pass_that_fails_is_logged_and_the_next_pass_runs(live: Live, caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from danbao.store import StoreUnavailable

    failures = iter([StoreUnavailable("server closed the connection"), RuntimeError("a bug")])

    def failing_then_working() -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    monkeypatch.setattr(live.services.webhooks, "run_once", failing_then_working)
    background = Background(live.services, interval_seconds=0.01)
    with caplog.at_level("WARNING", logger="danbao.background"):
        background.start()
        try:
            assert background.wait_for_passes("webhooks", 3, WAIT_SECONDS)  # two failed, one ran
        finally:
            background.stop()
    failed = [r for r in caplog.records if "webhooks pass failed" in r.getMessage()]
    assert len(failed) == 2
    expected, unexpected = failed
    assert "store_unavailable: server closed the connection" in expected.getMessage() and expected.exc_info is None
    assert unexpected.exc_info is not None  # a fault of ours keeps its traceback


def test_the_jobs_pass_sweeps_idempotency_keys_past_their_day(live: Live) -> None:
    ann = live.party("buyer", "ann")
    ann.top_up(10, "CNY")  # the client sends an Idempotency-Key: a record is kept
    kept = "SELECT COUNT(*) FROM idempotency_keys"
    assert live.services.ledger.db.read_raw(lambda raw: raw.rows(kept))[0][0] > 0
    live.clock.advance(KEEP_SECONDS + 1)
    run_jobs(live.services)
    assert live.services.ledger.db.read_raw(lambda raw: raw.rows(kept)) == [(0,)]


def test_a_whole_pass_delivers_the_webhooks_due(live: Live) -> None:
    receiver = Receiver([])
    try:
        ann = live.party("buyer", "ann")
        live.party("seller", "tea")
        ann.register_webhook(receiver.url, ["trade.created"])
        ann.create_trade(seller_id="tea", model="escrow", amount=300, currency="CNY")
        run_pass(live.services)
        assert len(receiver.received) == 1
    finally:
        receiver.close()


def test_each_loop_counts_exactly_the_passes_it_ended(live: Live, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ran: list[int] = []
    monkeypatch.setattr(live.services.webhooks, "run_once", lambda: ran.append(1))
    background = Background(live.services, interval_seconds=0.01)
    background.start()
    try:
        assert background.wait_for_passes("webhooks", 3, WAIT_SECONDS)
    finally:
        background.stop()
    ended = background.passes("webhooks")
    assert ended == len(ran) >= 3
    assert background.wait_for_passes("webhooks", ended, 0)  # already there: no waiting
