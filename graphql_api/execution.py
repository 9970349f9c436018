"""How one GraphQL operation runs: within a wall-clock cap, within a result size, and
sharing the event loop with every other request.

``bounded`` runs an operation as its own task and cancels it at the cap
(``GRAPHQL_OPERATION_TIMEOUT_S``, applied by the view) or as soon as ``YieldingExecutor``
finds the result larger than ``MAX_RESULT_OBJECTS``. ``YieldingExecutor`` is graphql-core's
executor, except that completing a large result gives the event loop a turn every
``SLICE_OBJECTS`` objects: without it, a page of 200 traces with their span trees is
seconds of pure Python with no await, during which no other request is served and no cap
can fire. Operations in flight take turns (``take_turn``): one slice of one of them per
turn of the loop, so a small request's every step waits for one slice at most, not for one
slice of each large operation in flight.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable, Coroutine
from contextlib import suppress
from contextvars import ContextVar
from typing import Any, TypeVar

from graphql import GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from graphql_api.column_fields import row_reader

T = TypeVar("T")

# Objects (traces, edges, spans, genAi, ...) one result may hold. A document is refused
# before it runs when its result could hold more than result_cost.MAX_RESULT_COST (25,000),
# estimated with 100 spans a trace; this stops one reading traces far larger than that.
MAX_RESULT_OBJECTS = 50_000
MSG_RESULT_TOO_LARGE = (
    f"The result is too large: more than {MAX_RESULT_OBJECTS:,} objects; "
    "ask for fewer rows, fields or aliases."
)
# Objects and lists completed in one stretch before the other requests get a turn of the
# event loop (~30-70 ms of CPU here). Counted, not timed: DataLoader batches are cut where
# a slice ends, so the SQL an operation costs must not depend on the machine's load. A
# result within one slice (a page of 200 traces with conversation and rootSpan is ~800)
# keeps one batch per loader; a larger one costs one more batch per slice, at most
# MAX_RESULT_OBJECTS / SLICE_OBJECTS.
SLICE_OBJECTS = 2000

# Resolved by the executor of the operation ``bounded`` runs, to stop it (a reason).
_stop: ContextVar[asyncio.Future[str] | None] = ContextVar("graphql_stop", default=None)


class ResultTooLarge(ValueError):
    """A client error: the operation asked for more than ``MAX_RESULT_OBJECTS``."""


async def bounded(operation: Coroutine[Any, Any, T], seconds: float) -> T:
    """The result of ``operation``; TimeoutError past ``seconds``, ResultTooLarge when
    its result outgrows ``MAX_RESULT_OBJECTS``. Either way the operation is cancelled
    first."""
    stop: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    token = _stop.set(stop)
    try:
        task = asyncio.ensure_future(operation)  # runs in a copy of this context: sees stop
    finally:
        _stop.reset(token)
    waiters: set[asyncio.Future[Any]] = {task, stop}
    try:
        done, _ = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task in done:
        stop.cancel()
        return task.result()
    if stop.done():
        raise ResultTooLarge(stop.result())
    raise TimeoutError


class YieldingExecutor(StrawberryGraphQLCoreExecutionContext):
    """Completes objects and lists inline until a slice is spent; then queues each one
    still to complete, and one pump completes the queue a slice at a time, with a turn of
    the loop in between. The result and its order are those of graphql-core.

    Past ``MAX_RESULT_OBJECTS`` the operation is stopped through ``bounded`` (outside it,
    each further object fails with ``ResultTooLarge``): objects still to complete are left
    waiting for the cancellation, rather than each failing with an error of its own.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completed = 0
        self._objects = 0
        self._spent = False
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]]] = (
            deque()
        )
        self._pump_task: asyncio.Task[None] | None = None

    def complete_object_value(self, *args: Any) -> Any:
        return self._now_or_later(self._complete_object_now, args)

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        *args: Any,
    ) -> Any:
        # A field read from the row (graphql_api.column_fields: a column, or a function of
        # the row alone), scalar or enum: its value, coerced, without the resolve info,
        # resolver call and completion layers graphql-core spends on every field. Any other
        # case (a list, a null, a value the scalar refuses, a row without the column) takes
        # the general path, which also reports the errors.
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        read = row_reader(field_def.resolve) if field_def is not None else None
        middleware = self.middleware_manager
        if read is not None and (middleware is None or not middleware.middlewares):
            try:
                value = read(source)
            except Exception:  # the general path runs the field's resolver, reports errors
                value = None
            field_type = field_def.type  # type: ignore[union-attr]
            if isinstance(field_type, GraphQLNonNull):
                field_type = field_type.of_type
            if value is not None and isinstance(field_type, GraphQLLeafType):
                try:
                    coerced = field_type.coerce_output_value(value)
                except Exception:  # reported by the general path below
                    coerced = None
                if coerced is not None and coerced is not Undefined:
                    return coerced
        return super().execute_field(parent_type, source, field_details_list, path, *args)

    def complete_list_value(self, *args: Any) -> Any:
        # A whole list waits as one: 200 lists of 40 spans queued as 200 entries, not as
        # 8,000 objects each with its own future.
        return self._now_or_later(super().complete_list_value, args)

    def _now_or_later(self, complete: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if not self._spent:
            self._completed += 1
            if self._completed < SLICE_OBJECTS:
                return complete(*args)
            self._spent = True
        future = asyncio.get_running_loop().create_future()
        self._queue.append((complete, args, future))
        if self._pump_task is None:
            self._pump_task = asyncio.ensure_future(self._pump())
        return self._completed_later(future)

    def _complete_object_now(self, *args: Any) -> Any:
        self._objects += 1
        if self._objects > MAX_RESULT_OBJECTS:
            stop = _stop.get()
            if stop is None:
                raise ResultTooLarge(MSG_RESULT_TOO_LARGE)
            if not stop.done():
                stop.set_result(MSG_RESULT_TOO_LARGE)
            self._queue.clear()
            return asyncio.get_running_loop().create_future()  # never resolved
        return super().complete_object_value(*args)

    async def _completed_later(self, future: asyncio.Future[Any]) -> Any:
        try:
            value = await future
        except asyncio.CancelledError:
            # Cancelled after the pump completed it: close the coroutine nobody will await.
            if (
                future.done()
                and not future.cancelled()
                and future.exception() is None
                and asyncio.iscoroutine(leftover := future.result())
            ):
                leftover.close()
            raise
        return await value if self.is_awaitable(value) else value

    async def _pump(self) -> None:
        try:
            while self._queue:
                await take_turn()
                try:
                    self._slice()
                finally:
                    pass_turn()
        finally:
            self._pump_task = None

    def _slice(self) -> None:
        self._completed = 0
        self._spent = False
        while self._queue and not self._spent:
            complete, args, future = self._queue.popleft()
            if future.cancelled():  # the operation was cancelled
                continue
            try:
                future.set_result(complete(*args))
            except Exception as error:  # handed to the waiter
                future.set_exception(error)


class _Turns:
    """Who may complete a slice next, on one event loop."""

    def __init__(self) -> None:
        self.busy = False
        self.waiting: deque[asyncio.Future[None]] = deque()


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = weakref.WeakKeyDictionary()


def _loop_turns() -> _Turns:
    return _turns.setdefault(asyncio.get_running_loop(), _Turns())


async def take_turn() -> None:
    """Wait until this operation may complete a slice: operations in flight take turns, one
    slice per turn of the loop between them, so a small request waits for one slice at
    each of its steps, however many large results are being completed."""
    turns = _loop_turns()
    if not turns.busy:
        turns.busy = True
        waiting: asyncio.Future[None] | None = None
    else:
        waiting = asyncio.get_running_loop().create_future()
        turns.waiting.append(waiting)
    try:
        if waiting is None:
            await asyncio.sleep(0)  # everyone else's turn
        else:
            await waiting  # handed over at the end of another slice: the loop turned since
    except asyncio.CancelledError:
        if waiting is None or (waiting.done() and not waiting.cancelled()):
            pass_turn()  # cancelled holding the turn: hand it on
        raise


def pass_turn() -> None:
    """End this operation's slice: the next waiting operation's goes on the next turn of
    the loop."""
    turns = _loop_turns()
    while turns.waiting:
        waiting = turns.waiting.popleft()
        if not waiting.done():
            waiting.set_result(None)
            return
    turns.busy = False
