"""Plain value types handed to users: responses, headers and SSE events."""

from __future__ import annotations

import json as _json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


class Headers(Mapping[str, str]):
    """Response headers: a read-only mapping with case-insensitive names.

    Repeated headers are joined with ", " (as libesp's esp_response_header
    does); ``multi_items()`` keeps them apart, in arrival order.
    """

    __slots__ = ("_items", "_by_name")

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items
        # Built on first lookup: a live stream keeps its head for its whole
        # life, and most callers never look at the headers.
        self._by_name: dict[str, str] | None = None

    @property
    def _joined(self) -> dict[str, str]:
        joined = self._by_name
        if joined is None:
            joined = {}
            for name, value in self._items:
                key = name.lower()
                joined[key] = f"{joined[key]}, {value}" if key in joined else value
            self._by_name = joined
        return joined

    def __getitem__(self, name: str) -> str:
        return self._joined[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._joined

    def __iter__(self) -> Iterator[str]:
        return iter(self._joined)

    def __len__(self) -> int:
        return len(self._joined)

    def multi_items(self) -> list[tuple[str, str]]:
        """Every header as a (lower-case name, value) pair, in arrival order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._joined!r})"


class Response:
    """A complete HTTP response. Any status, 200 or 500, is a Response: only
    transport failures raise (see EspError)."""

    __slots__ = ("status", "headers", "content", "http_version", "attempts")

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        content: bytes,
        http_version: int,
        attempts: int,
    ) -> None:
        #: The HTTP status code.
        self.status = status
        #: The response headers.
        self.headers = Headers(headers)
        #: The body, as received.
        self.content = content
        #: 10 for HTTP/1.0, 11 for HTTP/1.1, 20 for HTTP/2.
        self.http_version = http_version
        #: How many attempts libesp made (1 when the request was not retried).
        self.attempts = attempts

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return _json.loads(self.content)

    def __repr__(self) -> str:
        return f"<esp.Response {self.status}, {len(self.content)} bytes>"


@dataclass(frozen=True)
class ServerSentEvent:
    """One Server-Sent Event, parsed by libesp."""

    #: The event type; "message" when the stream named none.
    event: str
    #: The data lines, joined with "\\n".
    data: str
    #: The last event id seen on the stream, "" when none.
    id: str = ""
    #: The reconnection time this event set, in milliseconds, or None.
    retry: int | None = None

    def json(self) -> Any:
        """The data parsed as JSON."""
        return _json.loads(self.data)


_new_object = object.__new__


def new_event(event: str, data: str, id: str, retry: int | None) -> ServerSentEvent:
    """A ServerSentEvent built the fast way, for the binding's per-event path:
    the generated frozen __init__ sets each field through
    object.__setattr__, three times the cost of filling the instance
    dictionary directly. Same fields, same object."""
    ev = _new_object(ServerSentEvent)
    fields = ev.__dict__
    fields["event"] = event
    fields["data"] = data
    fields["id"] = id
    fields["retry"] = retry
    return ev
