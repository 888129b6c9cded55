"""Group commit: many callers' transfers coalesced into shared database transactions.

Callers block in `submit` until their own results are durable. One writer thread takes
whatever has queued up while the previous batch was committing, commits it as one
transaction, and hands each caller its own slice of the results. The queue is bounded, so
overload pushes back on callers instead of growing without limit.

Closed-loop callers split into two groups that alternate (one waits on the commit while
the other is woken), halving every batch. Like PostgreSQL's `commit_delay` with
`commit_siblings`, the writer therefore lingers, at most `LINGER_SECONDS_MAX`, until the
callers it served in the last two batches are all queued again. A lone caller never waits.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from danbao.errors import invariant
from danbao.ledger.model import NewTransfer, TransferResult

CommitFn = Callable[[list[Sequence[NewTransfer]]], list[list[TransferResult]]]

QUEUE_REQUESTS_MAX = 65_536
LINGER_SECONDS_MAX = 0.0002


@dataclass(slots=True)
class _Request:
    transfers: Sequence[NewTransfer]
    caller: int = field(default_factory=threading.get_ident)
    done: threading.Event = field(default_factory=threading.Event)
    results: list[TransferResult] | None = None
    error: BaseException | None = None


_STOP = object()


class GroupCommitter:
    def __init__(self, commit: CommitFn, *, transfers_per_batch_max: int, name: str = "danbao-group-commit"):
        self._commit = commit
        self._transfers_max = transfers_per_batch_max
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_REQUESTS_MAX)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, transfers: Sequence[NewTransfer]) -> list[TransferResult]:
        if self._closed:
            raise RuntimeError("the ledger is closed")
        request = _Request(transfers)
        self._queue.put(request)
        request.done.wait()
        if request.error is not None:
            raise request.error
        invariant(request.results is not None, "a request was woken without results")
        return request.results  # type: ignore[return-value]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        carried: _Request | None = None
        recent: list[set[int]] = [set(), set()]  # callers served by the last two batches
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is _STOP:
                return
            batch: list[_Request] = [first]  # type: ignore[list-item]
            count = len(first.transfers)  # type: ignore[union-attr]
            expected = len(recent[0] | recent[1])
            linger_until = time.perf_counter() + LINGER_SECONDS_MAX
            stop = False
            while count < self._transfers_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = linger_until - time.perf_counter()
                    if len(batch) >= expected or remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                size = len(item.transfers)  # type: ignore[union-attr]
                if count + size > self._transfers_max:
                    carried = item  # type: ignore[assignment]
                    break
                batch.append(item)  # type: ignore[arg-type]
                count += size
            recent = [recent[1], {r.caller for r in batch}]
            self._commit_batch(batch)
            if stop:
                if carried is not None:
                    self._commit_batch([carried])
                return

    def _commit_batch(self, batch: list[_Request]) -> None:
        try:
            results = self._commit([r.transfers for r in batch])
            for request, result in zip(batch, results, strict=True):
                request.results = result
        except BaseException as error:  # every waiter must wake, whatever happened
            for request in batch:
                request.error = error
        finally:
            for request in batch:
                request.done.set()
