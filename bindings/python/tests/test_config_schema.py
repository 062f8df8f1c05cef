"""Python's config handling against libesp's own table (esp.config_schema()):
every key is a keyword argument of Client, a misspelt one is named with the
key it meant, and the keys the httpx transport writes all exist."""

from __future__ import annotations

from typing import Any

import pytest

import esp
from esp import _httpx


def schema_keys() -> dict[str, dict[str, Any]]:
    return {key["key"]: key for key in esp.config_schema()["keys"]}


def test_the_schema_comes_from_the_loaded_library() -> None:
    schema = esp.config_schema()
    assert esp.version().startswith(schema["version"] + " ")
    keys = schema_keys()
    assert len(keys) >= 40
    assert keys["timeout_ms"]["type"] == "integer" and keys["timeout_ms"]["unit"] == "ms"
    assert [k["key"] for k in keys["rate_limit"]["keys"]] == ["requests_per_minute", "tokens_per_minute"]


def test_every_key_is_a_keyword_argument_and_its_default_changes_nothing(mock: Any) -> None:
    with esp.Client(base_url=mock.base_url) as plain:
        plain_id = plain.stats()["client"]["id"]
    tried = 0
    for name, key in schema_keys().items():
        if key["default"] is None:
            continue
        with esp.Client(base_url=mock.base_url, **{name: key["default"]}) as client:
            assert client.stats()["client"]["id"] == plain_id, name
        tried += 1
    assert tried >= 25


def test_a_misspelt_keyword_is_refused_with_the_key_it_meant(mock: Any) -> None:
    with pytest.raises(esp.ConfigError, match=r"unknown key 'timeout' \(did you mean 'timeout_ms'\?\)"):
        esp.Client(base_url=mock.base_url, timeout=5)
    with pytest.raises(esp.ConfigError, match=r"did you mean 'max_retries'"):
        esp.Client(base_url=mock.base_url, maxRetries=1)


def test_the_transport_writes_only_keys_libesp_has(tmp_path: Any) -> None:
    import httpx

    known = set(schema_keys())
    written: set[str] = set(_httpx._TRANSPORT_DEFAULTS)
    written |= {key for key in _httpx._PHASE_CONFIG_KEYS.values() if key}
    cert = tmp_path / "cert.pem"
    cert.write_text("")
    for arguments in (
        {},
        {"verify": False},
        {"cert": str(cert)},
        {"cert": (str(cert), str(cert))},
        {"http2": True, "http1": False},
        {"proxy": "http://127.0.0.1:9"},
        {"limits": httpx.Limits(max_connections=5, keepalive_expiry=30)},
    ):
        written |= set(_httpx.httpx_config(**arguments))
    assert "max_connections" in written and "http2" in written
    assert written <= known, written - known
