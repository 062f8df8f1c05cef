"""Exceptions: one class per libesp status code, all under EspError.

Each class also derives from the builtin exception a Python caller would
naturally catch for that failure (TimeoutError, ConnectionError, ValueError,
MemoryError), so code written against the standard library keeps working.
An HTTP error status (404, 429, 500) is not an exception: it is a Response.
"""

from __future__ import annotations

import builtins


class EspError(Exception):
    """A libesp call failed.

    ``code`` is the negative esp_status from include/esp.h and ``message`` the
    detail libesp gave for it (esp_last_error, or esp_strerror when there was
    no detail).
    """

    #: The esp_status this class stands for (0 on the base class).
    status_code = 0

    def __init__(self, code: int, message: str, request_sent: bool = False) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        #: True when the failure came after the request may have reached the
        #: server (so it may have been processed): esp_last_error_sent.
        self.request_sent = request_sent

    def __str__(self) -> str:
        return f"{self.message} (esp status {self.code})"


class InvalidArgumentError(EspError, ValueError):
    """ESP_EINVAL: a bad argument (CR/LF in a header, a blocking call from a
    libesp callback, ...)."""

    status_code = -1


class ConfigError(EspError, ValueError):
    """ESP_ECONFIG: the client config is malformed, has an unknown key or a
    value of the wrong type; the message names the key."""

    status_code = -2


class HandleError(EspError):
    """ESP_EHANDLE: the client, call or stream was released, closed or never
    valid."""

    status_code = -3


class OutOfMemoryError(EspError, MemoryError):
    """ESP_ENOMEM: libesp could not allocate memory."""

    status_code = -4


class TimeoutError(EspError, builtins.TimeoutError):
    """ESP_ETIMEDOUT: the total, connect, first-byte or idle timeout elapsed."""

    status_code = -5


class PoolTimeoutError(TimeoutError):
    """ESP_EPOOLTIMEOUT: no connection slot became free within
    pool_timeout_ms."""

    status_code = -6


class ConnectError(EspError, ConnectionError):
    """ESP_ECONNECT: DNS, TCP connect, connection refused or reset."""

    status_code = -7


class TLSError(EspError, ConnectionError):
    """ESP_ETLS: TLS handshake or certificate verification failed."""

    status_code = -8


class NetworkError(EspError, ConnectionError):
    """ESP_EIO: sending or receiving failed on an established connection."""

    status_code = -9


class ProtocolError(EspError):
    """ESP_EPROTOCOL: the server did not speak HTTP."""

    status_code = -10


class CancelledError(EspError):
    """ESP_ECANCELLED: the call was cancelled or its stream closed."""

    status_code = -11


class CircuitOpenError(EspError, ConnectionError):
    """ESP_ECIRCUIT: the origin's circuit breaker is open after repeated
    failures; no request was sent."""

    status_code = -12


class ResponseTooLargeError(EspError):
    """ESP_ETOOLARGE: the response exceeded max_response_bytes."""

    status_code = -13


class ShutdownError(EspError):
    """ESP_ESHUTDOWN: esp_shutdown ran while the call was in flight."""

    status_code = -14


class InternalError(EspError):
    """ESP_EINTERNAL: a bug in libesp; please report it with the message."""

    status_code = -15


class RateLimitedError(EspError):
    """ESP_ERATELIMITED: the client's rate_limit left no budget for the
    request before its timeout; it was never sent. The message names the
    limit and when it resets."""

    status_code = -17


class LibraryNotFoundError(OSError):
    """libesp could not be loaded; the message lists every place tried."""


_BY_CODE = {
    cls.status_code: cls
    for cls in (
        InvalidArgumentError,
        ConfigError,
        HandleError,
        OutOfMemoryError,
        TimeoutError,
        PoolTimeoutError,
        ConnectError,
        TLSError,
        NetworkError,
        ProtocolError,
        CancelledError,
        CircuitOpenError,
        ResponseTooLargeError,
        ShutdownError,
        InternalError,
        RateLimitedError,
    )
}


def error_for(code: int, message: str, request_sent: bool = False) -> EspError:
    """The exception for a status code; unknown (newer) codes get EspError."""
    return _BY_CODE.get(code, EspError)(code, message, request_sent)
