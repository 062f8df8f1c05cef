"""The async library a call was made from (asyncio or trio), seen through
one small interface: a future the caller awaits and a thread-safe way to run
code on its event loop. libesp completes calls on its own I/O thread, so
this is all the async side needs, and anyio code runs on either backend.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import os
import sys
import weakref
from collections.abc import Callable, Generator
from typing import Any


class LoopClosed(Exception):
    """The event loop that made a call has finished: nobody is left to tell."""


def _gil_holding_write() -> Callable[[int, bytes, int], int] | None:
    """libc's write(2) called without releasing the GIL (ctypes.PyDLL), or
    None where that is not available."""
    try:
        write = ctypes.PyDLL(None).write
    except (OSError, AttributeError):
        return None
    write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    write.restype = ctypes.c_ssize_t
    return write


_write_holding_gil = _gil_holding_write() if hasattr(os, "eventfd") else None
_ONE = (1).to_bytes(8, sys.byteorder)


class _Doorbell:
    """How libesp's I/O thread hands work to one asyncio loop: it queues the
    work and, only when the queue was idle, writes an eventfd the loop
    watches (loop.add_reader), so one wake-up carries every completion that
    arrived meanwhile.

    The write keeps the GIL. call_soon_threadsafe's own write releases it:
    the woken loop thread then takes the GIL and the I/O thread, still inside
    its callback, waits for it until the loop's next blocking call, while
    every other transfer waits with it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: _doorbells holds this strongly, and a strong reference back
        # would keep every loop (and its descriptor) alive forever.
        self._loop = weakref.ref(loop)
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._queue: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._rung = False
        try:
            loop.add_reader(self._fd, self._drain)
        except BaseException:
            os.close(self._fd)
            raise
        weakref.finalize(loop, os.close, self._fd)

    def future(self) -> asyncio.Future[Any]:
        """On the loop: the doorbell is its loop's port (one per loop, not
        one per call or stream: thousands of streams may be live)."""
        loop = self._loop()
        assert loop is not None  # called from the running loop
        return loop.create_future()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """On any thread, holding the GIL."""
        loop = self._loop()
        if loop is None or loop.is_closed():
            raise LoopClosed
        self._queue.append((fn, args))
        if not self._rung:
            self._rung = True
            _write_holding_gil(self._fd, _ONE, 8)

    def _drain(self) -> None:
        """On the loop. Clears the flag before draining: work queued after
        that is either drained here or rings again."""
        try:
            os.eventfd_read(self._fd)
        except BlockingIOError:
            pass
        self._rung = False
        queue = self._queue
        while queue:
            fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - one failure must not strand the rest
                loop = self._loop()
                if loop is not None:
                    loop.call_exception_handler({"message": "libesp completion failed", "exception": exc})


#: The doorbell of each asyncio loop that made a libesp call.
_doorbells: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Doorbell] = weakref.WeakKeyDictionary()


def _doorbell(loop: asyncio.AbstractEventLoop) -> _Doorbell | None:
    """The loop's doorbell, made on first use; None where the loop cannot
    watch a descriptor (then call_soon_threadsafe carries the work)."""
    bell = _doorbells.get(loop)
    if bell is None and _write_holding_gil is not None:
        try:
            bell = _doorbells[loop] = _Doorbell(loop)
        except (NotImplementedError, OSError, TypeError):
            return None
    return bell


class _AsyncioPort:
    """The port of a loop that cannot watch a descriptor (no doorbell)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def future(self) -> asyncio.Future[Any]:
        return self._loop.create_future()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError as exc:  # the loop is closed
            raise LoopClosed from exc


class _TrioFuture:
    """The few Future methods the call machinery uses, over a trio.Event."""

    def __init__(self, event: Any) -> None:
        self._event = event
        self._result: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: Any) -> None:
        self._result = result
        self._event.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._event.set()

    def result(self) -> Any:
        if not self._event.is_set():
            raise RuntimeError("result is not ready")
        if self._error is not None:
            raise self._error
        return self._result

    async def _wait(self) -> Any:
        await self._event.wait()
        return self.result()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()


class _TrioPort:
    def __init__(self, trio: Any) -> None:
        self._trio = trio
        self._token = trio.lowlevel.current_trio_token()

    def future(self) -> _TrioFuture:
        return _TrioFuture(self._trio.Event())

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._token.run_sync_soon(fn, *args)
        except self._trio.RunFinishedError as exc:
            raise LoopClosed from exc


def current_port() -> _Doorbell | _AsyncioPort | _TrioPort:
    """The port of the running event loop (asyncio or trio)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return _doorbell(loop) or _AsyncioPort(loop)
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return _TrioPort(trio)
        except RuntimeError:
            pass
    raise RuntimeError("no running event loop: await libesp calls from asyncio or trio")
