"""A serving process freezes its start-up heap, collects young objects less often, and lets
a thread that asks for the interpreter lock have it sooner."""

from __future__ import annotations

import gc
import sys

import pytest

from danbao.api.serving import SWITCH_INTERVAL_SECONDS, YOUNG_THRESHOLD, freeze_startup_heap, ready_to_serve


@pytest.fixture
def restored_gc():
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(interval)


class Survivor:
    """An object in a reference cycle, so the collector tracks it."""

    def __init__(self) -> None:
        self.me = self


def test_objects_alive_at_start_up_leave_the_collectors_view(restored_gc) -> None:
    survivor = Survivor()
    assert any(o is survivor for o in gc.get_objects())

    freeze_startup_heap()

    assert gc.get_freeze_count() > 0
    assert not any(o is survivor for o in gc.get_objects())
    later = Survivor()
    assert any(o is later for o in gc.get_objects())


def test_young_threshold_rises_and_older_ratios_stay(restored_gc) -> None:
    _, middle, oldest = gc.get_threshold()
    freeze_startup_heap()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, oldest)


def test_ready_to_serve_freezes_the_heap_and_shortens_the_switch_interval(restored_gc) -> None:
    assert sys.getswitchinterval() > SWITCH_INTERVAL_SECONDS  # CPython's 5 ms
    ready_to_serve()
    assert gc.get_freeze_count() > 0
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_SECONDS)
