"""Finding libesp (esp.load, ESP_LIBRARY, pkg-config, the system loader) and
the ctypes fallback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import esp
from mockserver import ESP_ROOT

BUILD = ESP_ROOT / "build"


def header_version() -> str:
    """The version include/esp.h declares: the one number every package takes."""
    header = (ESP_ROOT / "include" / "esp.h").read_text()
    return ".".join(
        re.search(rf"^#define ESP_VERSION_{part} (\d+)$", header, re.M).group(1) for part in ("MAJOR", "MINOR", "PATCH")
    )


def run_python(code: str, **env_changes: str) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (a process loads libesp only once)."""
    env = dict(os.environ)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=60
    )


def test_loaded_library_reports_its_version():
    assert esp.version().startswith(header_version() + " ")
    assert esp.__version__ == header_version()
    assert esp.backend_name() == "cffi"


def test_explicit_path_that_does_not_exist_names_it():
    result = run_python("import esp; esp.load('/nonexistent/libesp.so')")
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    assert "/nonexistent/libesp.so" in result.stderr


def test_without_any_hint_the_error_lists_what_was_tried():
    no_hints = {"ESP_LIBRARY": None, "PKG_CONFIG_PATH": "/nonexistent", "LD_LIBRARY_PATH": None}
    installed = run_python("import ctypes.util; print(ctypes.util.find_library('esp'))", **no_hints)
    if installed.stdout.strip() != "None":
        pytest.skip("libesp is installed system-wide")
    result = run_python("import esp; esp.Client()", **no_hints)
    assert result.returncode != 0
    for tried in ("ESP_LIBRARY: not set", "pkg-config", "system loader", "libesp.so.0"):
        assert tried in result.stderr


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="pkg-config is not installed")
def test_pkg_config_libdir_is_used_when_esp_library_is_unset():
    result = run_python(
        "import esp; print(esp.load())",
        ESP_LIBRARY=None,
        PKG_CONFIG_PATH=str(BUILD / "pkgconfig"),
        LD_LIBRARY_PATH=None,
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).resolve().parent == BUILD.resolve()


def test_ctypes_fallback_does_everything_cffi_does(mock):
    code = f"""
        import asyncio, esp
        assert esp.backend_name() == "ctypes"
        chat = {{"model": "m", "messages": [{{"role": "user", "content": "ctypes"}}]}}
        with esp.Client(base_url={mock.base_url!r}, max_retries=0) as client:
            reply = client.request("chat/completions", json=chat, headers={{"x-a": "b"}})
            assert reply.json()["choices"][0]["message"]["content"] == "echo: ctypes", reply.content
            events = list(client.stream("chat/completions", json={{**chat, "stream": True}}))
            assert events[-1].data == "[DONE]"
            raw = client.stream("chat/completions", json={{**chat, "stream": True}}, raw=True).read()
            assert raw.endswith(b"[DONE]\\n\\n"), raw
            try:  # the 0.2.0 fields of esp_request_opts reach libesp
                client.request({mock.url("/echo")!r}, headers={{"x-mock-delay-ms": "600"}}, first_byte_timeout=0.2)
            except esp.TimeoutError as exc:
                assert exc.message.startswith("first-byte timeout"), exc
            else:
                raise AssertionError("no first-byte timeout")

            async def main():
                reply = await client.arequest("chat/completions", json=chat)
                assert reply.status == 200
                events = [e async for e in client.astream("chat/completions", json={{**chat, "stream": True}})]
                assert events[-1].data == "[DONE]"
                try:
                    await client.arequest("models", headers={{"x-mock-hang": "1"}}, timeout=0.2)
                except esp.TimeoutError:
                    pass
                else:
                    raise AssertionError("no timeout")

            asyncio.run(main())
            assert isinstance(client.stats(), dict)
        try:
            esp.Client(bogus=1)
        except esp.ConfigError as exc:
            assert "bogus" in str(exc)
        print("ok")
    """
    result = run_python(code, ESP_PYTHON_BACKEND="ctypes")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_libesp_already_loaded_in_the_process_is_the_one_used(tmp_path):
    """One pool per process: when something else (ctypes here, a C extension in
    real life) has loaded libesp.so.0, from a file of its own, esp shares it
    instead of loading the one pkg-config names: it sees the other's client."""
    other_copy = tmp_path / "libesp.so.0"
    shutil.copy(BUILD / "libesp.so.0", other_copy)
    result = run_python(
        f"""
        import ctypes
        other = ctypes.CDLL({str(other_copy)!r})
        lease = ctypes.c_uint64()
        config = b'{{"base_url":"http://127.0.0.1:9/v1","name":"loaded-by-ctypes"}}'
        assert other.esp_client_get(config, ctypes.byref(lease)) == 0
        import esp
        print(esp.load())
        print(sorted(c["name"] for c in esp.stats()["clients"]))
        """,
        ESP_LIBRARY=None,
    )
    assert result.returncode == 0, result.stderr
    loaded_from, clients = result.stdout.splitlines()
    assert loaded_from == "libesp.so.0"
    assert "loaded-by-ctypes" in clients

