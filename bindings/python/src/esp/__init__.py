"""libesp for Python: one shared, pooled HTTP client for LLM provider APIs.

    import esp

    with esp.Client(provider="openai", api_key_env="OPENAI_API_KEY") as client:
        reply = client.request("chat/completions", json={...})
        for event in client.stream("chat/completions", json={..., "stream": True}):
            ...

esp.HTTPTransport / esp.AsyncHTTPTransport put the openai and anthropic SDKs
(or anything built on httpx) on libesp, and esp.install() every httpx client
of the process (or `python -m esp.run app.py`); they need httpx or httpx2.
"""

from __future__ import annotations

import json as _json
from importlib import metadata as _metadata
from typing import TYPE_CHECKING, Any

from . import _native
from ._client import AsyncStream, Client, Stream
from ._errors import (
    CancelledError,
    CircuitOpenError,
    ConfigError,
    ConnectError,
    EspError,
    HandleError,
    InternalError,
    InvalidArgumentError,
    LibraryNotFoundError,
    NetworkError,
    OutOfMemoryError,
    PoolTimeoutError,
    ProtocolError,
    RateLimitedError,
    ResponseTooLargeError,
    ShutdownError,
    TimeoutError,
    TLSError,
)
from ._native import load
from ._types import Headers, Response, ServerSentEvent

if TYPE_CHECKING:
    from ._httpx import AsyncHTTPTransport, HTTPTransport, UnsupportedOption
    from ._install import install, installed, uninstall

try:  # the distribution's version, which setup.py takes from include/esp.h
    __version__ = _metadata.version("libesp")
except _metadata.PackageNotFoundError:  # imported from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncHTTPTransport",
    "AsyncStream",
    "CancelledError",
    "CircuitOpenError",
    "Client",
    "ConfigError",
    "ConnectError",
    "EspError",
    "HTTPTransport",
    "HandleError",
    "Headers",
    "InternalError",
    "InvalidArgumentError",
    "LibraryNotFoundError",
    "NetworkError",
    "OutOfMemoryError",
    "PoolTimeoutError",
    "ProtocolError",
    "RateLimitedError",
    "Response",
    "ResponseTooLargeError",
    "ServerSentEvent",
    "ShutdownError",
    "Stream",
    "TLSError",
    "TimeoutError",
    "UnsupportedOption",
    "backend_name",
    "config_schema",
    "install",
    "installed",
    "load",
    "metrics_prometheus",
    "stats",
    "uninstall",
    "version",
]


def __getattr__(name: str) -> Any:
    # The transports import httpx, which the rest of the package does not need.
    if name in ("HTTPTransport", "AsyncHTTPTransport", "UnsupportedOption"):
        from . import _httpx

        return getattr(_httpx, name)
    if name in ("install", "uninstall", "installed"):
        from . import _install

        return getattr(_install, name)
    raise AttributeError(f"module 'esp' has no attribute {name!r}")


def version() -> str:
    """The loaded libesp's version and libcurl's, e.g. "0.1.0 (libcurl/7.88.1 ...)"."""
    return _native.backend().version_string()


def config_schema() -> dict[str, Any]:
    """libesp's table of config keys (esp_config_schema): ``{"version": ...,
    "keys": [{"key", "type", "default", "doc", ...}, ...]}``. Client's keyword
    arguments are these keys; libesp checks them, naming a bad or misspelt one."""
    return _json.loads(_native.backend().config_schema())


def backend_name() -> str:
    """How libesp is called: "cffi", or "ctypes" when cffi is unavailable."""
    return _native.backend().name


def stats() -> dict[str, Any]:
    """Process-wide libesp stats (registry, every client and origin) as a dict."""
    return _json.loads(_native.backend().stats())


def metrics_prometheus() -> str:
    """The same numbers as stats(), in the Prometheus text exposition format."""
    return _native.backend().metrics_prometheus()
