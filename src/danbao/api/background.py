"""What `danbao serve` runs beside the API: trade timeouts, expired holds, webhook fan-out and
delivery, and the idempotency sweep, in one thread, one bounded pass at a time."""

from __future__ import annotations

import logging
import threading

from danbao.api.services import Services
from danbao.trade import run_until_idle

log = logging.getLogger("danbao.background")
INTERVAL_SECONDS = 0.5


def run_pass(services: Services) -> None:
    run_until_idle(services.trades)
    services.webhooks.run_once()
    services.idempotency.sweep()


class Background:
    def __init__(self, services: Services, interval_seconds: float = INTERVAL_SECONDS):
        self.services = services
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="danbao-background", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                run_pass(self.services)
            except Exception:  # a pass that fails is logged and tried again next time
                log.exception("background pass failed")
            self._stop.wait(self.interval_seconds)  # a daemon's idle wait between passes
