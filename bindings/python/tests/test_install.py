"""esp.install() / esp.uninstall() / python -m esp.run: httpx and httpx2
clients created afterwards run on libesp, with their own settings, and an
unchanged program's connections collapse to the shared pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import httpx2
import pytest

import esp
from descriptors import ENV as IO_THREADS_ENV
from descriptors import LIBESP_OWN
from mockserver import ESP_ROOT

PER_ROW = ESP_ROOT / "examples" / "python" / "per_row.py"


@pytest.fixture(params=[httpx2, httpx], ids=["httpx2", "httpx"])
def flavour(request):
    return request.param


@pytest.fixture
def installed():
    esp.install()
    try:
        yield
    finally:
        esp.uninstall()


def _on_libesp(client) -> bool:
    return "_esp" in vars(client._transport)


def test_clients_created_after_install_run_on_libesp_and_custom_transports_are_left_alone(mock, flavour, installed):
    client = flavour.Client()
    assert _on_libesp(client)
    assert client.get(mock.url("/echo")).status_code == 200
    assert _on_libesp(flavour.AsyncClient())
    mocked = flavour.MockTransport(lambda request: flavour.Response(204))
    with flavour.Client(transport=mocked) as custom:
        assert custom._transport is mocked and custom.get("http://anywhere.example/").status_code == 204

    class Subclass(flavour.HTTPTransport):
        pass

    assert "_esp" not in vars(Subclass())


def test_an_explicit_default_kind_transport_is_taken_over_as_langchain_builds_it(mock, flavour, installed):
    import socket

    transport = flavour.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)])
    assert "_esp" in vars(transport)
    with flavour.Client(transport=transport) as client:
        assert client.get(mock.url("/echo")).status_code == 200
    # An option libesp cannot set (a bytes value) keeps that transport on httpcore.
    kept = flavour.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"lo")])
    assert "_esp" not in vars(kept)
    kept.close()


def test_the_clients_own_settings_are_carried_over(mock, flavour, installed, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    url = mock.https_base_url + "/models"
    with flavour.Client(verify=mock.ca_file) as trusting:
        assert _on_libesp(trusting) and trusting.get(url).status_code == 200
    with flavour.Client() as default:
        with pytest.raises(flavour.ConnectError, match="certificate"):
            default.get(url)
    with flavour.Client(verify=False) as unverified:
        assert unverified.get(url).status_code == 200
    with flavour.Client(limits=flavour.Limits(max_connections=3, keepalive_expiry=9)) as limited:
        config = vars(limited._transport)["_esp"]._config
        assert config["max_connections"] == 3 and config["conn_max_idle_ms"] == 9000


def test_what_libesp_cannot_honour_stays_on_httpx(flavour, installed):
    transport = flavour.HTTPTransport(local_address="127.0.0.1")
    assert "_esp" not in vars(transport) and hasattr(transport, "_pool")


def test_uninstall_restores_httpx_and_clients_made_while_installed_keep_working(mock, flavour):
    esp.install()
    made_while_installed = flavour.Client()
    esp.uninstall()
    assert not esp.installed()
    after = flavour.Client()
    assert not _on_libesp(after) and hasattr(after._transport, "_pool")
    assert after.get(mock.url("/echo")).status_code == 200
    assert made_while_installed.get(mock.url("/echo")).status_code == 200
    made_while_installed.close()
    after.close()


def test_install_is_idempotent_and_thread_safe(mock, flavour):
    threads = [threading.Thread(target=esp.install) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        esp.install(http2=True)
        client = flavour.Client()
        assert vars(client._transport)["_esp"]._config["http2"] is True
        assert client.get(mock.url("/echo")).status_code == 200
    finally:
        esp.uninstall()
    # One layer of wrapping, however often install() ran.
    assert flavour.HTTPTransport.handle_request.__wrapped__.__qualname__ == "HTTPTransport.handle_request"


def _per_row(mock, *runner: str, mode: str, rows: int, extra_env: dict | None = None) -> tuple[dict, dict]:
    with httpx2.Client() as plain:
        plain.post(mock.url("/_mock/reset"))
    env = dict(os.environ, SSL_CERT_FILE=mock.ca_file, **(extra_env or {}))
    result = subprocess.run(
        [
            sys.executable,
            *runner,
            str(PER_ROW),
            "--base-url",
            mock.https_base_url,
            "--rows",
            str(rows),
            "--mode",
            mode,
            "--concurrency",
            "10",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), mock.stats()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_unchanged_program_collapses_to_the_shared_pool_under_esp_run(mock, mode):
    rows = 40
    plain, plain_server = _per_row(mock, mode=mode, rows=rows)
    assert plain["ok"] == rows and not plain["on_libesp"]
    assert plain_server["connections"] >= rows * 0.9  # httpx: a pool per client

    ours, server = _per_row(mock, "-m", "esp.run", mode=mode, rows=rows, extra_env=IO_THREADS_ENV)
    assert ours["on_libesp"] and ours["ok"] == rows, ours["failures"]
    assert server["connections"] <= (1 if mode == "sync" else 10)  # HTTP/1.1: at most one per request in flight
    assert ours["resource_warnings"] == 0
    # Flat: a socket per request in flight at most, plus libesp's and the
    # event loop's own few (with the binding's eventfd for an asyncio loop's
    # completions); httpx's peak grows with the rows instead.
    in_flight = 1 if mode == "sync" else 10
    own = (4 if mode == "sync" else 5) + LIBESP_OWN
    assert ours["fds_peak"] <= ours["fds_before"] + in_flight + own

    multiplexed, server = _per_row(
        mock, "-m", "esp.run", mode=mode, rows=rows, extra_env={"ESP_INSTALL_CONFIG": '{"http2": true}', **IO_THREADS_ENV}
    )
    assert multiplexed["ok"] == rows and server["connections"] == 1
    assert multiplexed["fds_peak"] <= multiplexed["fds_before"] + own


def test_esp_run_passes_arguments_and_runs_modules(tmp_path: Path):
    script = tmp_path / "app.py"
    script.write_text("import sys, esp\nprint(sys.argv[1:], esp.installed(), __name__)\n")
    out = subprocess.run(
        [sys.executable, "-m", "esp.run", str(script), "a", "--b"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "['a', '--b'] True __main__"
    out = subprocess.run(
        [sys.executable, "-m", "esp.run", "-m", "json.tool", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "json.tool" in out.stdout
    usage = subprocess.run([sys.executable, "-m", "esp.run"], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage" in usage.stderr
