"""esp.install(): every httpx / httpx2 client created afterwards runs on
libesp, with no change to the code that creates it.

It works one level below the clients: httpx.Client builds its default
transport as httpx.HTTPTransport(verify=..., cert=..., http2=..., limits=...,
...), and frameworks such as LangChain build that class themselves (with
socket_options). While installed, a new httpx.HTTPTransport /
AsyncHTTPTransport (exactly those classes, not subclasses) becomes a shell
around an esp.HTTPTransport built from the same arguments, so every client
keeps its own verify, cert, http2, limits, proxy and trust_env. Custom
transports (MockTransport, ASGI/WSGI, subclasses) are left alone, and so is
a transport whose arguments libesp cannot honour (uds, local_address,
proxy headers, a socket option with a bytes value): it stays on httpcore.

uninstall() stops new transports from being made this way; those already
made keep working on libesp until they are closed.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from . import _httpx

_lock = threading.Lock()
#: libesp config keys applied to every transport while installed; None when
#: not installed. Read without the lock: replacing a reference is atomic.
_overrides: dict[str, Any] | None = None
_patched: set[type] = set()

_SYNC_METHODS = ("handle_request", "close", "__enter__", "__exit__")
_ASYNC_METHODS = ("handle_async_request", "aclose", "__aenter__", "__aexit__")


def install(config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """Put every httpx and httpx2 client created from now on on libesp.

    ``config`` and keyword arguments are libesp config keys given to every
    such transport, over what the client asked for (e.g. ``http2=True`` to
    multiplex every client's requests over HTTP/2 where the server offers
    it). Idempotent (a second call replaces the keys), thread-safe.
    """
    global _overrides
    with _lock:
        for flavour in _httpx._FLAVOURS:
            _patch(flavour)
        _overrides = {**(config or {}), **kwargs}


def uninstall() -> None:
    """New httpx clients use httpx's own transport again. Clients made while
    installed stay on libesp until closed."""
    global _overrides
    with _lock:
        _overrides = None


def installed() -> bool:
    """True between install() and uninstall()."""
    return _overrides is not None


def _patch(flavour: ModuleType) -> None:
    """Wrap the default transports' methods, once per class: the wrappers
    route to the libesp transport when the instance has one and to the
    original method otherwise, so patching never needs undoing."""
    for cls, methods in ((flavour.HTTPTransport, _SYNC_METHODS), (flavour.AsyncHTTPTransport, _ASYNC_METHODS)):
        if cls in _patched:
            continue
        cls.__init__ = _wrap_init(cls, cls.__init__)
        for name in methods:
            setattr(cls, name, _wrap_method(name, getattr(cls, name)))
        _patched.add(cls)


def _wrap_init(cls: type, original: Any) -> Any:
    signature = inspect.signature(original)

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        overrides = _overrides
        if overrides is not None and type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            del bound.arguments["self"]
            httpx_args = dict(bound.arguments)
            try:
                self._esp = _httpx.HTTPTransport(dict(overrides), **httpx_args)
                return
            except _httpx.UnsupportedOption:
                pass  # stays on httpx's own transport
        original(self, *args, **kwargs)

    return __init__


def _wrap_method(name: str, original: Any) -> Any:
    if name in ("__enter__", "__aenter__"):
        if name == "__enter__":

            @functools.wraps(original)
            def enter(self: Any) -> Any:
                return self if "_esp" in self.__dict__ else original(self)

            return enter

        @functools.wraps(original)
        async def aenter(self: Any) -> Any:
            return self if "_esp" in self.__dict__ else await original(self)

        return aenter
    if name in ("__exit__", "__aexit__"):
        if name == "__exit__":

            @functools.wraps(original)
            def exit_(self: Any, *exc_info: Any) -> None:
                esp = self.__dict__.get("_esp")
                return esp.close() if esp is not None else original(self, *exc_info)

            return exit_

        @functools.wraps(original)
        async def aexit(self: Any, *exc_info: Any) -> None:
            esp = self.__dict__.get("_esp")
            return esp.close() if esp is not None else await original(self, *exc_info)

        return aexit
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_method(self: Any, *args: Any) -> Any:
            esp = self.__dict__.get("_esp")
            if esp is None:
                return await original(self, *args)
            return await getattr(esp, name)(*args)

        return async_method

    @functools.wraps(original)
    def method(self: Any, *args: Any) -> Any:
        esp = self.__dict__.get("_esp")
        return original(self, *args) if esp is None else getattr(esp, name)(*args)

    return method
