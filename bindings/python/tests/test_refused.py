"""A NUL byte in the method, path or a header would cut the C string there
and the cut request would go out: every way of sending refuses it with
InvalidArgumentError (ESP_EINVAL) naming the string, and nothing is sent."""

from __future__ import annotations

import itertools
import json
import urllib.request

import pytest

import esp

CASES = [
    ("method", {"method": "GET\0X"}, "models", "method is not a valid HTTP method token"),
    ("path", {}, "models\0/../admin", "path contains white space or control characters"),
    ("header name", {"headers": {"X-Cut\0Off": "v"}}, "models", "header 'X-Cut\\x00Off' has an invalid name"),
    ("header value", {"headers": {"X-Secret": "sk-abc\0def"}}, "models", "header 'X-Secret' value contains a NUL byte"),
]
_keys = itertools.count()


def _received(mock, key: str) -> list:
    with urllib.request.urlopen(mock.url(f"/_mock/requests?key={key}"), timeout=10) as r:
        return json.load(r)


def _with_key(kwargs: dict, key: str) -> dict:
    return {**kwargs, "headers": {**kwargs.get("headers", {}), "x-mock-key": key}}


def _check(exc: pytest.ExceptionInfo, message: str) -> None:
    assert exc.value.code == esp.InvalidArgumentError.status_code
    assert exc.value.message == message
    assert not exc.value.request_sent
    assert "sk-abc" not in str(exc.value)


@pytest.mark.parametrize(("what", "kwargs", "path", "message"), CASES)
def test_a_nul_is_refused_by_request_and_stream_and_nothing_is_sent(client, mock, what, kwargs, path, message):
    for send in (client.request, lambda p, **kw: client.stream(p, **kw).close()):
        key = f"nul-{what.replace(' ', '-')}-{next(_keys)}"
        with pytest.raises(esp.InvalidArgumentError) as exc:
            send(path, **_with_key(kwargs, key))
        _check(exc, message)
        assert _received(mock, key) == [], what


@pytest.mark.parametrize(("what", "kwargs", "path", "message"), CASES)
async def test_a_nul_is_refused_by_arequest_and_astream_and_nothing_is_sent(client, mock, what, kwargs, path, message):
    key = f"nul-async-{what.replace(' ', '-')}-{next(_keys)}"
    with pytest.raises(esp.InvalidArgumentError) as exc:
        await client.arequest(path, **_with_key(kwargs, key))
    _check(exc, message)
    with pytest.raises(esp.InvalidArgumentError) as exc:
        async with client.astream(path, **_with_key(kwargs, key)):
            pass
    _check(exc, message)
    assert _received(mock, key) == [], what
