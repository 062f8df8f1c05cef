"""The binding's view of the C ABI: the cffi declarations match
include/esp.h, and every status code has its exception class."""

from __future__ import annotations

import re

import pytest

import esp
from esp import _native
from esp._errors import error_for
from mockserver import ESP_ROOT


def _normalize(c_text: str) -> str:
    c_text = re.sub(r"/\*.*?\*/", " ", c_text, flags=re.S)
    c_text = c_text.replace("ESP_API", " ")
    c_text = re.sub(r"\s+", " ", c_text)
    return re.sub(r"\s*([(){};,*])\s*", r"\1", c_text).strip()


def _declarations(c_text: str) -> dict[str, str]:
    """Struct typedefs and function prototypes, by name, normalized."""
    text = _normalize(c_text)
    found = {}
    for match in re.finditer(r"typedef struct (\w+)\{[^}]*\}\w+;", text):
        found[match.group(1)] = match.group(0)
    for match in re.finditer(r"[\w ]+?\**\b(esp_\w+)\([^;{]*\);", text):
        found[match.group(1)] = match.group(0).strip()
    return found


def test_cdef_matches_the_public_header():
    header = _declarations((ESP_ROOT / "include" / "esp.h").read_text())
    cdef = _declarations(_native.CDEF)
    assert len(cdef) > 30
    for name, declaration in cdef.items():
        assert header.get(name) == declaration, f"{name} differs from include/esp.h"


def test_cdef_constants_match_the_header():
    header = (ESP_ROOT / "include" / "esp.h").read_text()

    def value(name: str) -> int:
        match = re.search(rf"\b{name}\s*=?\s*(-?(0x)?[0-9a-fA-F]+)u?\b", header)
        assert match, name
        return int(match.group(1), 0)

    assert value("ESP_EAGAIN") == _native.ESP_EAGAIN
    assert value("ESP_ERATELIMITED") == esp.RateLimitedError.status_code
    assert value("ESP_REQ_NO_RETRY") == _native.ESP_REQ_NO_RETRY
    assert value("ESP_REQ_STREAM_RAW") == _native.ESP_REQ_STREAM_RAW
    assert value("ESP_ITEM_EVENT") == _native.ESP_ITEM_EVENT


@pytest.mark.parametrize(
    ("code", "cls", "builtin"),
    [
        (-1, esp.InvalidArgumentError, ValueError),
        (-2, esp.ConfigError, ValueError),
        (-3, esp.HandleError, Exception),
        (-4, esp.OutOfMemoryError, MemoryError),
        (-5, esp.TimeoutError, TimeoutError),
        (-6, esp.PoolTimeoutError, TimeoutError),
        (-7, esp.ConnectError, ConnectionError),
        (-8, esp.TLSError, ConnectionError),
        (-9, esp.NetworkError, ConnectionError),
        (-10, esp.ProtocolError, Exception),
        (-11, esp.CancelledError, Exception),
        (-12, esp.CircuitOpenError, ConnectionError),
        (-13, esp.ResponseTooLargeError, Exception),
        (-14, esp.ShutdownError, Exception),
        (-15, esp.InternalError, Exception),
        (-17, esp.RateLimitedError, Exception),
    ],
)
def test_every_status_has_its_exception_class(code, cls, builtin):
    error = error_for(code, "detail")
    assert type(error) is cls
    assert isinstance(error, esp.EspError) and isinstance(error, builtin)
    assert (error.code, error.message) == (code, "detail")
    assert _native.backend().strerror(code) not in ("", "unknown status")


def test_an_unknown_future_status_is_still_an_esp_error():
    error = error_for(-99, "new")
    assert type(error) is esp.EspError and error.code == -99
