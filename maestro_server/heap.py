"""The cyclic garbage collector of a long-running server, tuned for many executions in flight.

With thousands of executions in flight the heap holds a few hundred thousand container objects
(runners, their coroutines, futures, gRPC calls). CPython's default thresholds (700, 10, 10)
then run a full collection about once a second, and each one walks the whole heap: measured
under `make bench-scale`, 17 full collections of 0.15–0.25 s of CPU in a 17 s run, a fifth of
the server's CPU, and every one of them a pause of the event loop that every execution in
flight waits out (the slowest execution took 2.5–2.9 s for a 2 s step). With `settle()`: 2 full
collections of under 0.06 s in the same run.

What `settle()` does about it:
- **Freeze** what exists once the server is set up (modules, classes, functions, compiled
  workflows): it lives as long as the process, so no collection walks it again.
- **Collect the youngest generation less often** (every 50,000 allocations, not 700): a
  request's or a step's objects are freed by reference counting long before that, so fewer
  of them survive a collection, get promoted and swell the oldest generation; a young
  collection scans at most that many objects, about a millisecond.
- **Collect the middle generation less often** (after 20 young collections, not 10). The rule
  for a full collection is CPython's own: after 10 middle collections, and only once the
  objects promoted since the last one reach a quarter of those that survived it.

The engine keeps a finished execution free of reference cycles (see engine/stopwatch.py), so
reference counting frees it at once, with everything it held. Reference counting frees almost
everything; the collector only finds cycles (an exception with
its traceback, a task and its callbacks), so collecting them a little later costs a little
memory, never correctness.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations (minus deallocations) of container objects between two young collections."""
MIDDLE_THRESHOLD = 20
"""Young collections between two collections of the middle generation."""
OLD_THRESHOLD = 10
"""Middle collections before a full one is considered (CPython's default)."""


def settle() -> None:
    """Freeze the heap as it stands (the server is set up) and space collections out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
