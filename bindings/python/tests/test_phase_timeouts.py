"""first_byte_timeout and idle_timeout of request, arequest, stream and
astream (esp_request_opts' first_byte_timeout_ms and idle_timeout_ms): each
fires alone for its own phase, against the mock's late heads and slow
bodies, and says which; math.inf lifts the config's limit for one request."""

from __future__ import annotations

import math

import pytest

import esp

LATE_HEAD = {"x-mock-delay-ms": "600"}  # the head after 600 ms, then the body at once
SLOW_BODY = {"x-mock-slowloris": "400"}  # the head at once, then 400 ms between body bytes
STEADY_BODY = {"x-mock-slowloris": "30"}  # a body that keeps coming, for longer than 300 ms


def _echo(mock) -> str:
    return mock.url("/echo")


def test_first_byte_timeout_bounds_the_wait_for_the_head_only(client, mock):
    with pytest.raises(esp.TimeoutError, match=r"^first-byte timeout.*\(250 ms\)"):
        client.request(_echo(mock), headers=LATE_HEAD, first_byte_timeout=0.25)
    with pytest.raises(esp.TimeoutError, match=r"^first-byte timeout.*\(250 ms\)"):
        client.stream(_echo(mock), headers=LATE_HEAD, first_byte_timeout=0.25).close()
    # A body that keeps coming is no wait for the head.
    assert client.request(_echo(mock), headers=STEADY_BODY, first_byte_timeout=0.3).status == 200


def test_idle_timeout_bounds_the_silences_in_the_body_only(client, mock):
    with pytest.raises(esp.TimeoutError, match=r"^idle timeout.*\(150 ms\)"):
        client.request(_echo(mock), headers=SLOW_BODY, idle_timeout=0.15)
    with client.stream(_echo(mock), headers=SLOW_BODY, idle_timeout=0.15) as s:
        assert s.status == 200
        with pytest.raises(esp.TimeoutError, match=r"^idle timeout.*\(150 ms\)"):
            s.read()
    # The wait for the head is no silence inside the body.
    assert client.request(_echo(mock), headers=LATE_HEAD, idle_timeout=0.15).status == 200


async def test_arequest_and_astream_take_both(client, mock):
    with pytest.raises(esp.TimeoutError, match=r"^first-byte timeout"):
        await client.arequest(_echo(mock), headers=LATE_HEAD, first_byte_timeout=0.25)
    assert (await client.arequest(_echo(mock), headers=LATE_HEAD, idle_timeout=0.15)).status == 200
    with pytest.raises(esp.TimeoutError, match=r"^idle timeout"):
        await client.arequest(_echo(mock), headers=SLOW_BODY, idle_timeout=0.15)
    with pytest.raises(esp.TimeoutError, match=r"^first-byte timeout"):
        async with client.astream(_echo(mock), headers=LATE_HEAD, first_byte_timeout=0.25):
            pass
    async with client.astream(_echo(mock), headers=SLOW_BODY, idle_timeout=0.15) as s:
        with pytest.raises(esp.TimeoutError, match=r"^idle timeout"):
            await s.aread()


def test_inf_lifts_the_configs_limit_and_bad_values_are_refused(config, mock):
    gappy_body = {"x-mock-slowloris": "130"}  # 20 bytes, each after 130 ms of silence
    with esp.Client(config, first_byte_timeout_ms=200, idle_timeout_ms=100) as c:
        with pytest.raises(esp.TimeoutError, match=r"^first-byte timeout"):
            c.request(_echo(mock), headers=LATE_HEAD)
        assert c.request(_echo(mock), headers=LATE_HEAD, first_byte_timeout=math.inf).status == 200
        with pytest.raises(esp.TimeoutError, match=r"^idle timeout"):
            c.request(_echo(mock), headers=gappy_body)
        assert c.request(_echo(mock), headers=gappy_body, idle_timeout=math.inf).status == 200
        for bad in (0, -1, math.nan):
            with pytest.raises(ValueError, match="first_byte_timeout"):
                c.request("models", first_byte_timeout=bad)
            with pytest.raises(ValueError, match="idle_timeout"):
                c.request("models", idle_timeout=bad)
