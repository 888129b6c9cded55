"""How a process is readied to serve the API: its garbage collector and its thread switches.

A serving process holds about 110,000 long-lived objects (modules, classes, routes,
validators, table metadata) that CPython's cyclic collector would otherwise re-scan: with
its defaults, a full collection every second or two under load, 55-80 ms each, and a young
collection every 700 allocations. Measured on the 2-core machine at 16 clients that was
about 57 µs of collection per request, and the full collections were the p99 tail
(docs/benchmarks.md, the 2026-11-23 section). Freezing the heap that exists once the app is
built takes those objects out of every later collection; a larger young threshold lets a
request's garbage, almost all of it freed by reference counting anyway, go before a
collection has to look at it. Afterwards: about 7 µs per request and no full collection in
steady state.

The event loop holds the interpreter lock almost all the time under load (uvloop keeps it
through its own I/O). A thread that needs it back, such as the one that waited out a
group's COMMIT on SQLite (`danbao.ledger.group_commit`), then waits CPython's switch
interval for the loop to be made to let go: 5 ms by default, longer than the commit
itself, which ate all that moving the COMMIT off the loop gained. At 0.2 ms the finisher
(with it) raised the trade calls' requests/s at 16 clients by about 10% (docs/benchmarks.md,
session 26); the interval alone changed nothing. Only a thread that asks for the lock
causes a switch, so a process with one busy thread pays nothing for it.
"""

from __future__ import annotations

import gc
import sys

# Young-generation allocations between collections (CPython's default is 700). At 10,000
# a collection sees the leftovers of a few requests rather than a fraction of one; the
# older generations keep their default ratios.
YOUNG_THRESHOLD = 10_000
# How long a thread waiting for the interpreter lock lets the holder run before asking
# for it (CPython's default is 5 ms).
SWITCH_INTERVAL_SECONDS = 0.0002


def ready_to_serve() -> None:
    """Ready this process to serve: call once, after the app and its services are built."""
    freeze_startup_heap()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)


def freeze_startup_heap() -> None:
    """Collect once, freeze every surviving object, and raise the young threshold.

    Call it after the app and its services are built and before serving, once per process.
    """
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
