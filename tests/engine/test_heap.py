"""A finished execution is freed by reference counting alone, and the server's collector tuning.

With thousands of executions in flight a garbage collection walks the whole heap and pauses
the event loop (maestro_server/heap.py): an execution that left a reference cycle behind would
be freed only by such a walk, so none may.
"""

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from maestro_server import heap
from maestro_server.definition import load_workflow
from maestro_server.engine.manager import ExecutionManager
from maestro_server.model.execution import ExecutionState
from maestro_server.store.memory import MemoryStore
from tests.engine.fakes import ScriptedInvoker, fail

WORKFLOW = load_workflow("""\
name: w
services:
  svc: {type: grpc, endpoint: "127.0.0.1:1"}
steps:
  - id: create
    service: svc
    method: Create
    compensate: {method: Delete}
  - id: approved
    wait: {signal: approved}
    output: approval
  - id: notify
    service: svc
    method: Notify
output: "{{ .approval }}"
""")


@pytest.fixture
def no_collector() -> Iterator[None]:
    """The collector off for the test: what is freed, reference counting freed."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def finished_runner_is_freed(invoker: ScriptedInvoker, expected: ExecutionState) -> None:
    store = MemoryStore()
    manager = ExecutionManager(store, invoker)
    await manager.start(WORKFLOW, {}, "e1")
    runner, task = manager._running["e1"]
    freed = weakref.ref(runner)
    del runner
    async with asyncio.timeout(10):
        while not task.done() and not manager._running["e1"][0].waiting_for_signal:
            await asyncio.sleep(0)
        if not task.done():
            await manager.signal("e1", "approved", {"by": "ada"})
        await task
    del task
    assert (await store.get_execution("e1")).state is expected
    assert freed() is None, gc.get_referrers(freed())


async def test_a_completed_execution_leaves_no_cycle(no_collector: None) -> None:
    """Calls, a wait and its signal, the end: nothing of the runner outlives its task."""
    await finished_runner_is_freed(ScriptedInvoker(), ExecutionState.COMPLETED)


async def test_a_compensated_execution_leaves_no_cycle(no_collector: None) -> None:
    """A step failing for good (an error, its traceback) and the saga's compensation."""
    invoker = ScriptedInvoker({"notify": fail("INVALID_ARGUMENT")})
    await finished_runner_is_freed(invoker, ExecutionState.COMPENSATED)


def test_settle_freezes_the_heap_and_spaces_collections_out() -> None:
    """What exists is frozen (no collection walks it again); young collections are rarer."""
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (
            heap.YOUNG_THRESHOLD,
            heap.MIDDLE_THRESHOLD,
            heap.OLD_THRESHOLD,
        )
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
