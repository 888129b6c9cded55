"""The group committer: with an inline commit, what an event loop's callers ask for in one
turn is committed on that loop's thread as one group, never while the writer thread
commits, and handed to the writer whenever the inline commit cannot start at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from danbao.ledger.group_commit import Failed, GroupCommitter


class Recorder:
    """Commit functions that record each group and the thread it ran on."""

    def __init__(self, inline_answers: bool = True):
        self.inline_groups: list[tuple[list[int], int]] = []
        self.writer_groups: list[tuple[list[int], int]] = []
        self.inline_answers = inline_answers
        self.in_writer = threading.Event()
        self.release_writer = threading.Event()
        self.release_writer.set()

    def writer(self, payloads: list[int]) -> list[int | Failed]:
        self.in_writer.set()
        assert self.release_writer.wait(timeout=30)
        self.writer_groups.append((list(payloads), threading.get_ident()))
        return [p * 10 for p in payloads]

    def inline(self, payloads: list[int]) -> list[int | Failed] | None:
        self.inline_groups.append((list(payloads), threading.get_ident()))
        return [p * 10 for p in payloads] if self.inline_answers else None


def committer(recorder: Recorder, **options) -> GroupCommitter[int, int]:  # type: ignore[no-untyped-def]
    return GroupCommitter(recorder.writer, size_max=100, inline=recorder.inline, name="test-group-commit", **options)


# How long a test waits for answers that should come at once: a caller never woken then
# fails its test instead of hanging the suite.
ANSWER_SECONDS_MAX = 30


async def submit_all(c: GroupCommitter[int, int], payloads: list[int]) -> list[object]:
    return await asyncio.wait_for(asyncio.gather(*(c.submit_async(p) for p in payloads), return_exceptions=True), ANSWER_SECONDS_MAX)


def _until_queued(c: GroupCommitter[int, int], count: int) -> None:
    """Until `count` items have been put on the writer's queue, taken off it since or not
    (a queue's unfinished tasks count every put until task_done, which it never gets)."""
    with c._queue.not_empty:  # notified at every put; its mutex is held
        assert c._queue.not_empty.wait_for(lambda: c._queue.unfinished_tasks >= count, timeout=30)


def test_one_turns_callers_are_one_group_committed_on_the_loop_thread() -> None:
    recorder = Recorder()
    c = committer(recorder)
    loop_thread: list[int] = []

    async def main() -> list[object]:
        loop_thread.append(threading.get_ident())
        return await submit_all(c, list(range(1, 9)))

    assert asyncio.run(main()) == [10, 20, 30, 40, 50, 60, 70, 80]
    c.close()
    assert recorder.inline_groups == [(list(range(1, 9)), loop_thread[0])]
    assert recorder.writer_groups == []
    assert c._finisher is None  # no finish was ever left to it


def test_a_group_the_inline_commit_declines_goes_to_the_writer() -> None:
    recorder = Recorder(inline_answers=False)
    c = committer(recorder)

    assert asyncio.run(submit_all(c, [1, 2, 3])) == [10, 20, 30]
    c.close()
    assert [payloads for payloads, _ in recorder.inline_groups] == [[1, 2, 3]]
    assert sorted(p for payloads, _ in recorder.writer_groups for p in payloads) == [1, 2, 3]
    assert all(thread != threading.get_ident() for _, thread in recorder.writer_groups)


def test_nothing_is_committed_inline_while_the_writer_commits() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c = committer(recorder)
    thread_caller = threading.Thread(target=lambda: c.submit(7))
    thread_caller.start()
    assert recorder.in_writer.wait(timeout=30)  # the writer is inside a commit, and stays there

    async def main() -> list[object]:
        waiting = asyncio.ensure_future(submit_all(c, [1, 2]))
        for _ in range(20):  # turns of the loop (no clock involved): the group is offered within a few
            await asyncio.sleep(0)
        assert not waiting.done()
        recorder.release_writer.set()
        return await waiting

    assert asyncio.run(main()) == [10, 20]
    thread_caller.join()
    c.close()
    assert recorder.inline_groups == []
    assert sorted(p for payloads, _ in recorder.writer_groups for p in payloads) == [1, 2, 7]


def test_inline_groups_are_bounded_by_size() -> None:
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=10, size=lambda p: 4, inline=recorder.inline)

    assert asyncio.run(submit_all(c, list(range(1, 8)))) == [10 * p for p in range(1, 8)]
    c.close()
    assert [payloads for payloads, _ in recorder.inline_groups] == [[1, 2], [3, 4], [5, 6], [7]]


class StoreBroke(Exception):
    """Whatever an inline commit may raise: not only what a test's arithmetic would."""


def test_an_inline_commit_that_fails_fails_its_whole_group_and_the_committer_keeps_serving() -> None:
    recorder = Recorder()

    def inline(payloads: list[int]) -> list[int | Failed]:
        raise StoreBroke("the disk is full")

    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=inline)
    outcomes = asyncio.run(submit_all(c, [1, 2, 3]))
    assert [type(o) for o in outcomes] == [StoreBroke] * 3
    assert c.submit(5) == 50
    c.close()


def test_a_loop_closed_before_its_group_was_answered_does_not_stop_the_writer() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100)  # asyncio callers go to the writer

    async def give_up() -> None:
        waiting = asyncio.ensure_future(c.submit_async(1))
        assert await asyncio.to_thread(recorder.in_writer.wait, 30)  # the writer holds the group
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)

    asyncio.run(give_up())  # its loop is closed: there is nobody to hand the answer to
    recorder.release_writer.set()
    assert asyncio.run(submit_all(c, [2])) == [20]  # the writer went on, to serve another loop
    c.close()
    assert [payloads for payloads, _ in recorder.writer_groups] == [[1], [2]]


def test_a_request_refused_inline_fails_alone() -> None:
    recorder = Recorder()

    def inline(payloads: list[int]) -> list[int | Failed]:
        return [Failed(KeyError(p)) if p == 2 else p * 10 for p in payloads]

    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=inline)
    outcomes = asyncio.run(submit_all(c, [1, 2, 3]))
    c.close()
    assert outcomes[0] == 10 and outcomes[2] == 30
    assert isinstance(outcomes[1], KeyError) and outcomes[1].args == (2,)


def test_without_an_inline_commit_asyncio_callers_go_to_the_writer() -> None:
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100)

    assert asyncio.run(submit_all(c, [1, 2, 3])) == [10, 20, 30]
    c.close()
    assert recorder.inline_groups == []
    assert sorted(p for payloads, _ in recorder.writer_groups for p in payloads) == [1, 2, 3]


async def _turns_until(condition, turns: int = 100) -> None:  # type: ignore[no-untyped-def]
    """Let the loop run until `condition()` holds (a bounded number of turns, no clock)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_a_lone_thread_caller_commits_on_its_own_thread() -> None:
    # Nobody to group with: the hand-over to the writer thread and back would only cost.
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100)
    assert [c.submit(p) for p in (1, 2, 3)] == [10, 20, 30]
    c.close()
    assert recorder.writer_groups == [([1], threading.get_ident()), ([2], threading.get_ident()), ([3], threading.get_ident())]


def test_a_second_caller_sends_requests_to_the_writer_until_one_caller_is_alone_again() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100)
    results: dict[int, object] = {}

    def call(payload: int) -> None:
        results[payload] = c.submit(payload)

    first = threading.Thread(target=call, args=(1,))
    first.start()
    assert recorder.in_writer.wait(timeout=30)  # 1 commits on its caller's thread
    second = threading.Thread(target=call, args=(2,))
    second.start()
    _until_queued(c, 1)  # 2 has company in the last groups: it goes to the writer
    recorder.release_writer.set()
    for thread in (first, second):
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert results == {1: 10, 2: 20}
    # The last two groups served two callers: this one goes to the writer, twice, and once
    # the last two groups were its own alone, it commits on its own thread again.
    assert [c.submit(p) for p in (3, 4, 5)] == [30, 40, 50]
    c.close()
    writer, me = c._thread.ident, threading.get_ident()
    assert recorder.writer_groups == [([1], first.ident), ([2], writer), ([3], writer), ([4], writer), ([5], me)]


def test_writer_groups_are_bounded_by_size_and_a_request_that_does_not_fit_waits_for_the_next() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=10, size=lambda p: 4)
    first = threading.Thread(target=lambda: c.submit(0))
    first.start()
    assert recorder.in_writer.wait(timeout=30)  # the writer holds [0] while the rest queue up

    async def main() -> list[object]:
        waiting = [asyncio.ensure_future(c.submit_async(p)) for p in range(1, 6)]
        await _turns_until(lambda: c._queue.qsize() == 5)
        recorder.release_writer.set()
        return await asyncio.wait_for(asyncio.gather(*waiting), ANSWER_SECONDS_MAX)

    assert asyncio.run(main()) == [10, 20, 30, 40, 50]
    first.join()
    c.close()
    assert [payloads for payloads, _ in recorder.writer_groups] == [[0], [1, 2], [3, 4], [5]]


def test_a_writer_commit_that_raises_fails_every_request_of_its_group_and_the_committer_keeps_serving() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()

    def writer(payloads: list[int]) -> list[int | Failed]:
        if 1 in payloads:
            raise OSError("disk full")
        return recorder.writer(payloads)

    c: GroupCommitter[int, int] = GroupCommitter(writer, size_max=100)
    first = threading.Thread(target=lambda: c.submit(0))
    first.start()
    assert recorder.in_writer.wait(timeout=30)  # the writer holds [0] while the rest queue up

    async def main() -> list[object]:
        waiting = [asyncio.ensure_future(c.submit_async(p)) for p in (1, 2, 3)]
        await _turns_until(lambda: c._queue.qsize() == 3)
        recorder.release_writer.set()
        return await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), ANSWER_SECONDS_MAX)

    outcomes = asyncio.run(main())
    assert [str(o) for o in outcomes] == ["disk full"] * 3 and all(isinstance(o, OSError) for o in outcomes)
    first.join()
    assert c.submit(5) == 50
    c.close()
    assert [payloads for payloads, _ in recorder.writer_groups] == [[0], [5]]


def test_a_cancelled_caller_stops_waiting_but_its_request_still_commits() -> None:
    # Cancelling is not undoing: once queued, a request commits with its group, like a
    # request whose client hung up. The others in the group get their answers.
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100)

    async def main() -> object:
        cancelled = asyncio.ensure_future(c.submit_async(1))
        kept = asyncio.ensure_future(c.submit_async(2))
        assert await asyncio.to_thread(recorder.in_writer.wait, 30)  # the writer holds the group
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        recorder.release_writer.set()
        return await asyncio.wait_for(kept, ANSWER_SECONDS_MAX)

    assert asyncio.run(main()) == 20
    c.close()
    assert sorted(p for payloads, _ in recorder.writer_groups for p in payloads) == [1, 2]


def test_a_closed_committer_refuses_new_requests() -> None:
    recorder = Recorder()
    c = committer(recorder)
    assert c.submit(1) == 10
    c.close()
    c.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        c.submit(2)
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(c.submit_async(3))
    assert [p for payloads, _ in recorder.writer_groups + recorder.inline_groups for p in payloads] == [1]


def closing_while_sized(holder: list[GroupCommitter[int, int]]):  # type: ignore[no-untyped-def]
    """A `size` that closes the committer, on another thread, while a caller is between
    its look at whether the committer is closed and its queueing."""

    def size(payload: int) -> int:
        if payload == 13:
            closer = threading.Thread(target=holder[0].close)
            closer.start()
            closer.join(timeout=30)
            assert not closer.is_alive()
        return 1

    return size


def test_a_thread_caller_racing_close_is_refused_not_left_waiting() -> None:
    recorder = Recorder()
    holder: list[GroupCommitter[int, int]] = []
    holder.append(GroupCommitter(recorder.writer, size_max=100, size=closing_while_sized(holder)))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(holder[0].submit(13))
        except RuntimeError as error:
            outcome.append(error)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=30)
    assert not caller.is_alive(), "the caller was left waiting on a closed committer"
    assert len(outcome) == 1 and "closed" in str(outcome[0])
    assert recorder.writer_groups == []


def test_an_asyncio_caller_racing_close_is_refused_not_left_waiting() -> None:
    recorder = Recorder()
    holder: list[GroupCommitter[int, int]] = []
    holder.append(GroupCommitter(recorder.writer, size_max=100, size=closing_while_sized(holder)))

    async def main() -> list[object]:
        return await asyncio.wait_for(submit_all(holder[0], [13]), timeout=30)

    outcomes = asyncio.run(main())
    assert len(outcomes) == 1 and isinstance(outcomes[0], RuntimeError) and "closed" in str(outcomes[0])
    assert recorder.writer_groups == []


def test_close_commits_every_request_already_queued_before_it_stops() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=1)
    results: dict[int, object] = {}

    def call(payload: int) -> None:
        results[payload] = c.submit(payload)

    callers = [threading.Thread(target=call, args=(p,), daemon=True) for p in (1, 2, 3)]
    callers[0].start()
    assert recorder.in_writer.wait(timeout=30)  # 1 is being committed; 2 and 3 queue
    for caller in callers[1:]:
        caller.start()
    _until_queued(c, 2)
    closer = threading.Thread(target=c.close, daemon=True)
    closer.start()
    recorder.release_writer.set()
    for thread in [closer, *callers]:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert results == {1: 10, 2: 20, 3: 30}


def test_close_while_a_group_forms_commits_what_came_before_it_in_groups_within_the_bound() -> None:
    recorder = Recorder()
    recorder.release_writer.clear()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=10, size=lambda p: 4)
    results: dict[int, object] = {}

    def call(payload: int) -> None:
        results[payload] = c.submit(payload)

    first = threading.Thread(target=call, args=(0,), daemon=True)
    first.start()
    assert recorder.in_writer.wait(timeout=30)  # 0 is being committed; the rest queue
    callers = [threading.Thread(target=call, args=(p,), daemon=True) for p in (1, 2, 3)]
    for caller in callers:
        caller.start()
    _until_queued(c, 3)
    closer = threading.Thread(target=c.close, daemon=True)
    closer.start()
    _until_queued(c, 4)  # the stop, behind them
    recorder.release_writer.set()
    for thread in [closer, first, *callers]:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert results == {0: 0, 1: 10, 2: 20, 3: 30}
    groups = [payloads for payloads, _ in recorder.writer_groups]
    assert groups[0] == [0] and sorted(p for g in groups[1:] for p in g) == [1, 2, 3]
    assert all(len(g) <= 2 for g in groups), "two of size 4 fit in 10, three do not"


class Finishes:
    """An inline commit that does its group's work at once and leaves a finish (the
    COMMIT) that waits for the test's word, recording the thread each part ran on."""

    def __init__(self, fail: bool = False):
        self.worked: list[tuple[list[int], int]] = []
        self.finished: list[tuple[list[int], int]] = []
        self.go = threading.Event()
        self.started = threading.Event()
        self.fail = fail

    def inline(self, payloads: list[int]):  # type: ignore[no-untyped-def]
        self.worked.append((list(payloads), threading.get_ident()))

        def finish() -> list[int | Failed]:
            self.started.set()
            assert self.go.wait(timeout=30)
            self.finished.append((list(payloads), threading.get_ident()))
            if self.fail:
                raise OSError("disk full")
            return [p * 10 for p in payloads]

        return finish


def test_a_group_left_to_finish_is_answered_only_once_its_finish_returns_off_the_loop() -> None:
    finishes = Finishes()
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=finishes.inline)
    loop_thread: list[int] = []

    async def main() -> list[object]:
        loop_thread.append(threading.get_ident())
        first = asyncio.ensure_future(submit_all(c, [1, 2, 3]))
        assert await asyncio.to_thread(finishes.started.wait, 30)
        # The loop is free while the finish waits, and the callers are not answered yet.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not first.done()
        finishes.go.set()
        return await first

    assert asyncio.run(main()) == [10, 20, 30]
    c.close()
    assert finishes.worked == [([1, 2, 3], loop_thread[0])]
    assert [payloads for payloads, _ in finishes.finished] == [[1, 2, 3]]
    assert finishes.finished[0][1] != loop_thread[0]
    assert recorder.writer_groups == []


def test_a_lone_callers_group_is_finished_on_the_loop_at_once() -> None:
    finishes = Finishes()
    finishes.go.set()
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=finishes.inline)
    loop_thread: list[int] = []

    async def main() -> list[object]:
        loop_thread.append(threading.get_ident())
        return await submit_all(c, [4])

    assert asyncio.run(main()) == [40]
    c.close()
    assert finishes.finished == [([4], loop_thread[0])]


def test_what_a_loop_asks_while_its_group_finishes_is_held_then_is_the_next_group() -> None:
    finishes = Finishes()
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=finishes.inline)

    async def main() -> tuple[list[object], list[object]]:
        first = asyncio.ensure_future(submit_all(c, [1, 2]))
        assert await asyncio.to_thread(finishes.started.wait, 30)
        second = asyncio.ensure_future(submit_all(c, [3, 4]))
        for _ in range(20):
            await asyncio.sleep(0)
        assert finishes.worked == [([1, 2], threading.get_ident())]  # nothing new started
        assert c._writing.locked()  # one group at a time: the writer thread waits too
        assert not second.done() and c._queue.qsize() == 0
        finishes.go.set()  # both finishes may now return
        return await first, await second

    assert asyncio.run(main()) == ([10, 20], [30, 40])
    c.close()
    assert [payloads for payloads, _ in finishes.worked] == [[1, 2], [3, 4]]
    assert recorder.writer_groups == []


def test_a_finish_that_fails_fails_its_whole_group_and_the_committer_keeps_serving() -> None:
    finishes = Finishes(fail=True)
    finishes.go.set()
    recorder = Recorder()
    c: GroupCommitter[int, int] = GroupCommitter(recorder.writer, size_max=100, inline=finishes.inline)

    outcomes = asyncio.run(submit_all(c, [1, 2, 3]))
    assert [type(o) for o in outcomes] == [OSError] * 3
    assert c.submit(5) == 50  # the writer's turn came back with the failure
    c.close()
