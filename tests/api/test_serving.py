"""A serving process freezes its start-up heap and collects young objects less often."""

from __future__ import annotations

import gc

import pytest

from danbao.api.serving import YOUNG_THRESHOLD, freeze_startup_heap


@pytest.fixture
def restored_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


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
