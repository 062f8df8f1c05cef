"""The async library a call was made from (asyncio or trio), seen through
one small interface: a future the caller awaits and a thread-safe way to run
code on its event loop. libesp completes calls on its own I/O thread, so
this is all the async side needs, and anyio code runs on either backend.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Generator
from typing import Any


class LoopClosed(Exception):
    """The event loop that made a call has finished: nobody is left to tell."""


class _AsyncioPort:
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


def current_port() -> _AsyncioPort | _TrioPort:
    """The port of the running event loop (asyncio or trio)."""
    try:
        return _AsyncioPort(asyncio.get_running_loop())
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            return _TrioPort(trio)
        except RuntimeError:
            pass
    raise RuntimeError("no running event loop: await libesp calls from asyncio or trio")
