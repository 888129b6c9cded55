"""Group commit: many callers' requests coalesced into shared database transactions.

Callers block in `submit` until their own outcome is durable. One writer thread takes
whatever has queued up while the previous group was committing, commits it as one
transaction, and hands each caller its own outcome (a result, or the error that refused
that caller alone). The queue is bounded, so overload pushes back on callers instead of
growing without limit; a group is bounded by the sum of its requests' sizes.

Closed-loop callers split into two groups that alternate (one waits on the commit while
the other is woken), halving every group. Like PostgreSQL's `commit_delay` with
`commit_siblings`, the writer therefore lingers, at most `LINGER_SECONDS_MAX`, until the
callers it served in the last two groups are all queued again. A lone caller never waits.

A thread caller that the last two groups served alone, finding the writer idle and nobody
queued, commits its request on its own thread: waking the writer and being woken by it
cost a lone caller more CPU than its commit (one client, one transfer a commit, SQLite:
about 410-450 us of CPU a commit against 260-290 without the hand-over). As soon as
another caller shows up in a group, requests go to the writer again, and group.

An `inline` commit, when given, serves asyncio callers on their own event loop: what the
loop's callers asked for during one turn of the loop is one group, committed on the loop
thread at the end of that turn if the writer thread is idle and `inline` can start without
waiting (else the group goes to the writer after all). It exists for SQLite, whose
statements are in-process calls that each release and retake the GIL: from the writer
thread every retake queued behind the busy event loop (CPython's convoy effect), so a
group's commit took about three times its CPU time, while on the loop thread nothing is
handed over. A backend whose statements wait on the network must not use it.

`inline` may also do a group's work and leave its COMMIT, returned as a function, to the
finisher thread: the loop then goes on with its other callers (parsing, answering) while
the finisher waits out the COMMIT's write and `fdatasync`, which otherwise stalled the
loop for a sixth of its time under the API's load. One group still commits at a time, so
what the loop's callers ask for meanwhile is held until that COMMIT is done, and is then
the next group. Nobody hears back before their group is durable. A group of one is
finished on the loop at once: a lone caller most likely has the loop to itself, and the
hand-off would only add to its wait (about 8% of a trade call's time with one client).
"""

from __future__ import annotations

import _thread
import asyncio
import queue
import threading
import time
from _thread import LockType
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from danbao.errors import invariant

P = TypeVar("P")
R = TypeVar("R")

QUEUE_REQUESTS_MAX = 65_536
# Long enough for eight woken threads to take the GIL in turn and queue again: at 0.2 ms a
# third of the groups left stragglers behind (8 thread clients on SQLite: mean group 6.96,
# 4,980 transfers/s; at 0.5 ms 7.97 and 5,860). A lone caller never waits for it.
LINGER_SECONDS_MAX = 0.0005


@dataclass(frozen=True, slots=True)
class Failed:
    """One request's own failure inside a group that otherwise committed."""

    error: BaseException


_PENDING = object()


@dataclass(slots=True)
class _Request(Generic[P, R]):
    payload: P
    size: int
    caller: int = field(default_factory=threading.get_ident)
    outcome: object = _PENDING  # R or Failed, once done
    # A thread caller waits to acquire `done`, a lock it holds until the writer releases
    # it (a bare lock: an Event's condition costs a few microseconds a side, paid by every
    # caller in turn under the GIL); an asyncio caller waits on `future`, on its loop.
    done: LockType | None = None
    future: asyncio.Future[Any] | None = None


def _wake(group: list[_Request[Any, Any]]) -> None:
    """Wake every caller of a group: thread callers one by one, asyncio callers with one
    call per event loop (each `call_soon_threadsafe` writes to the loop's wake-up pipe)."""
    waiting: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
    for request in group:
        if request.future is None:
            invariant(request.done is not None, "a thread caller brings its lock")
            request.done.release()  # type: ignore[union-attr]
        else:
            waiting.setdefault(request.future.get_loop(), []).append((request.future, request.outcome))
    for loop, futures in waiting.items():
        try:
            loop.call_soon_threadsafe(_resolve, futures)
        except RuntimeError:  # the loop has closed: nobody is left waiting on it
            pass


def _take(requests: list[_Request[Any, Any]], size_max: int) -> tuple[list[_Request[Any, Any]], list[_Request[Any, Any]]]:
    """The longest prefix of `requests` within `size_max` (at least one), and the rest."""
    total = 0
    for count, request in enumerate(requests):
        total += request.size
        if total > size_max and count:
            return requests[:count], requests[count:]
    return requests, []


def _resolve(futures: list[tuple[asyncio.Future[Any], object]]) -> None:
    for future, outcome in futures:
        if future.cancelled():
            continue
        if isinstance(outcome, Failed):
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome)


_STOP = object()


def _closed_error() -> RuntimeError:
    return RuntimeError("the ledger is closed")


class GroupCommitter(Generic[P, R]):
    """`commit(payloads) -> one outcome per payload`, called on one writer thread."""

    def __init__(
        self,
        commit: Callable[[list[P]], list[R | Failed]],
        *,
        size_max: int,
        size: Callable[[P], int] = lambda payload: 1,
        name: str = "danbao-group-commit",
        inline: Callable[[list[P]], list[R | Failed] | Callable[[], list[R | Failed]] | None] | None = None,
    ):
        self._commit = commit
        self._inline = inline  # `commit` on the caller's thread, or None if it would wait
        self._size = size
        self._size_max = size_max
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUE_REQUESTS_MAX)
        self._writing = threading.Lock()  # one group at a time, on the writer or inline
        self._held: dict[asyncio.AbstractEventLoop, list[_Request[P, R]]] = {}  # per loop, this turn's
        # Loops whose group's COMMIT is with the finisher thread, and what it has to do.
        self._finishing: set[asyncio.AbstractEventLoop] = set()
        self._finishes: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._closed = False
        # The callers the last two groups served (a group formed by the writer, or a lone
        # caller's own): how many to linger for, and whether a caller is alone.
        self._recent: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
        self._alone: int | None = None  # the thread committing its own request, if any
        # Held to check `_closed` and queue as one step, and to close: every request is
        # either refused or queued ahead of the writer's stop, so none is left waiting.
        self._admitting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._name = name
        self._finisher: threading.Thread | None = None  # started by the first finish

    def submit(self, payload: P) -> R:
        if self._closed:
            raise _closed_error()
        # The writer thread, or a caller committing its own request, submitting again
        # from inside that commit would wait for itself forever.
        invariant(threading.current_thread() is not self._thread and threading.get_ident() != self._alone, "no nested group commits")
        size = self._size(payload)
        invariant(0 < size <= self._size_max, "a request fits in one group")
        request: _Request[P, R] = _Request(payload, size)
        if not self._committed_alone(request):
            request.done = _thread.allocate_lock()
            request.done.acquire()
            self._admit(request)
            request.done.acquire()  # until the writer releases it
        outcome = request.outcome
        if isinstance(outcome, Failed):
            raise outcome.error
        invariant(outcome is not _PENDING, "a request was woken without an outcome")
        return outcome  # type: ignore[return-value]

    def _committed_alone(self, request: _Request[P, R]) -> bool:
        """Commit a lone thread caller's request on its own thread, if the last two groups
        served only it, the writer is idle and nobody is queued; else leave it be."""
        recent = self._recent
        if not (recent[0] | recent[1]) <= {request.caller} or not self._queue.empty():
            return False
        if not self._writing.acquire(blocking=False):
            return False
        try:
            # Looked at with `_writing` held, which `close` waits for, as on a loop.
            if self._closed:
                raise _closed_error()
            self._recent = (recent[1], frozenset((request.caller,)))
            self._alone = request.caller
            self._settle([request])
        finally:
            self._alone = None
            self._writing.release()
        return True

    async def submit_async(self, payload: P) -> R:
        """`submit` for asyncio callers: waits on the event loop, not on a thread."""
        if self._closed:
            raise _closed_error()
        size = self._size(payload)
        invariant(0 < size <= self._size_max, "a request fits in one group")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        request: _Request[P, R] = _Request(payload, size, future=future)
        held = self._held.get(loop) if self._inline is not None else None
        if self._inline is None or (held is not None and len(held) >= QUEUE_REQUESTS_MAX):
            self._admit(request)  # bounded; a full queue briefly blocks the loop, as back-pressure
        elif held is None:
            self._held[loop] = [request]
            loop.call_soon(self._commit_on_loop, loop)  # after the callbacks ready this turn
        else:
            held.append(request)
        return await future  # type: ignore[no-any-return]

    def _commit_on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit one group of what this loop's callers asked for, here, if the writer is
        idle and `inline` need not wait; otherwise hand the group to the writer. While
        this loop's last group is still committing, keep it: `_finished` comes back."""
        if loop in self._finishing:
            return  # held until this loop's group in flight has committed (`_finished`)
        held = self._held.pop(loop, None)
        if not held:
            return
        group, rest = _take(held, self._size_max)
        if rest:  # one group per turn, so the loop still answers I/O between groups
            self._held[loop] = rest
            loop.call_soon(self._commit_on_loop, loop)
        outcomes: list[R | Failed] | Callable[[], list[R | Failed]] | None = None
        if self._writing.acquire(blocking=False):
            # Looked at with `_writing` held, which `close` waits for; a group that does
            # not get it is refused by `_admit` below if the committer is closed.
            if self._closed:
                self._writing.release()
                _resolve([(r.future, Failed(_closed_error())) for r in group])  # type: ignore[misc]
                return
            try:
                outcomes = self._inline([r.payload for r in group])  # type: ignore[misc]
                if callable(outcomes) and len(group) == 1:
                    outcomes = outcomes()  # a lone caller: finished here (see the module's docstring)
            except Exception as error:
                outcomes = [Failed(error)] * len(group)
            if callable(outcomes):
                self._finish_later(outcomes, group, loop)  # `_writing` goes with it
                return
            self._writing.release()
        if outcomes is None:
            for request in group:
                try:
                    self._admit(request)
                except RuntimeError as error:  # closed meanwhile
                    _resolve([(request.future, Failed(error))])  # type: ignore[list-item]
            return
        invariant(len(outcomes) == len(group), "one outcome per request")
        _resolve([(r.future, outcome) for r, outcome in zip(group, outcomes, strict=True)])  # type: ignore[misc]

    def _finish_later(self, finish: Callable[[], list[R | Failed]], group: list[_Request[P, R]], loop: asyncio.AbstractEventLoop) -> None:
        """The group's work is done: its COMMIT goes to the finisher thread, which lets go
        of `_writing` once it is made, and this loop holds its callers until then."""
        if self._finisher is None:
            self._finisher = threading.Thread(target=self._run_finishes, name=f"{self._name}-finish", daemon=True)
            self._finisher.start()
        self._finishing.add(loop)
        self._finishes.put((finish, group, loop))

    def _run_finishes(self) -> None:
        """Make each loop's group durable, off its loop, then hand the outcomes back."""
        while True:
            item = self._finishes.get()
            if item is _STOP:
                return
            finish, group, loop = item  # type: ignore[misc]
            try:
                outcomes = finish()
                invariant(len(outcomes) == len(group), "one outcome per request")
            except BaseException as error:  # every waiter must wake, whatever happened
                outcomes = [Failed(error)] * len(group)
            finally:
                self._writing.release()
            try:
                loop.call_soon_threadsafe(self._finished, loop, group, outcomes)
            except RuntimeError:  # the loop has closed: nobody is left waiting on it
                pass

    def _finished(self, loop: asyncio.AbstractEventLoop, group: list[_Request[P, R]], outcomes: list[R | Failed]) -> None:
        self._finishing.discard(loop)
        _resolve([(r.future, outcome) for r, outcome in zip(group, outcomes, strict=True)])  # type: ignore[misc]
        self._commit_on_loop(loop)  # what was held meanwhile

    def _admit(self, request: _Request[P, R]) -> None:
        """Queue `request` for the writer, unless the committer is closed."""
        with self._admitting:
            if self._closed:
                raise _closed_error()
            self._queue.put(request)  # while full, `close` waits too, and the writer drains it

    def close(self) -> None:
        with self._admitting:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)  # behind every admitted request, which the writer commits first
        self._thread.join()
        # A loop holds `_writing` from its inline commit until its finish is queued (the
        # finisher lets go of it), and looks at `_closed` again once it has it, so no
        # finisher starts, and no finish comes after the stop, while this holds it.
        with self._writing:
            finisher = self._finisher
            self._finishes.put(_STOP)
        if finisher is not None:
            finisher.join()

    def _run(self) -> None:
        carried: _Request[P, R] | None = None
        while True:
            first = carried if carried is not None else self._queue.get()
            carried = None
            if first is _STOP:
                return
            group: list[_Request[P, R]] = [first]  # type: ignore[list-item]
            total = first.size  # type: ignore[union-attr]
            expected = len(self._recent[0] | self._recent[1])
            linger_until = time.perf_counter() + LINGER_SECONDS_MAX
            stop = False
            while total < self._size_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    remaining = linger_until - time.perf_counter()
                    if len(group) >= expected or remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                if total + item.size > self._size_max:  # type: ignore[attr-defined]
                    carried = item  # type: ignore[assignment]
                    break
                group.append(item)  # type: ignore[arg-type]
                total += item.size  # type: ignore[attr-defined]
            with self._writing:
                self._recent = (self._recent[1], frozenset(r.caller for r in group))
                try:
                    self._settle(group)
                finally:
                    _wake(group)
            if stop:  # the stop is queued behind every admitted request: none is carried
                return

    def _settle(self, group: list[_Request[P, R]]) -> None:
        """Commit `group`, giving each request its outcome: a result, or what failed it."""
        try:
            outcomes = self._commit([r.payload for r in group])
            invariant(len(outcomes) == len(group), "one outcome per request")
            for request, outcome in zip(group, outcomes, strict=True):
                request.outcome = outcome
        except BaseException as error:  # every waiter must wake, whatever happened
            for request in group:
                request.outcome = Failed(error)
