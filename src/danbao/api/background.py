"""What `danbao serve` runs beside the API, in two loops of bounded passes: the jobs (trade
timeouts, expired holds, the idempotency sweep) and the webhooks (fan-out and delivery).

They are separate threads because a delivery pass waits on receivers (up to one attempt's
deadline): a slow receiver may delay other deliveries a little, but never a trade's timeout
or a hold's expiry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from danbao.api.services import Services
from danbao.errors import DanbaoError
from danbao.trade import run_until_idle

log = logging.getLogger("danbao.background")
INTERVAL_SECONDS = 0.5


def run_jobs(services: Services) -> None:
    run_until_idle(services.trades)
    services.idempotency.sweep()


def run_pass(services: Services) -> None:
    """One pass of everything, in order (the loops' work, for callers without the loops)."""
    run_jobs(services)
    services.webhooks.run_once()


class Background:
    def __init__(self, services: Services, interval_seconds: float = INTERVAL_SECONDS):
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._passes = {"jobs": 0, "webhooks": 0}
        self._passed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, args=("jobs", lambda: run_jobs(services)), name="danbao-jobs", daemon=True),
            threading.Thread(target=self._run, args=("webhooks", services.webhooks.run_once), name="danbao-webhooks", daemon=True),
        ]

    def start(self) -> Background:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def passes(self, loop: str) -> int:
        """How many passes of that loop ("jobs" or "webhooks") have ended."""
        with self._passed:
            return self._passes[loop]

    def wait_for_passes(self, loop: str, count: int, timeout_seconds: float) -> bool:
        """Wait until that loop has ended `count` passes; False if it did not in time."""
        with self._passed:
            return self._passed.wait_for(lambda: self._passes[loop] >= count, timeout_seconds)

    def _run(self, loop: str, one_pass: Callable[[], object]) -> None:
        while not self._stop.is_set():
            try:
                one_pass()
            except DanbaoError as error:  # the database away, say: one line a pass, no traceback
                log.warning("background %s pass failed: %s: %s", loop, error.code, error.message)
            except Exception:  # a pass that fails is logged and tried again next time
                log.exception("background %s pass failed", loop)
            with self._passed:
                self._passes[loop] += 1
                self._passed.notify_all()
            self._stop.wait(self.interval_seconds)  # a daemon's idle wait between passes
