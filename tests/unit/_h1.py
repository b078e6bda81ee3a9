"""Helpers shared by the HTTP/1 parser tests: a recording events object and the backends."""

from __future__ import annotations

from typing import Any

import pytest

from squall.protocols.http1.backend_h11 import H11HTTP1
from squall.protocols.http1.backend_httptools import HttptoolsHTTP1
from squall.protocols.http1.base import HTTP1
from squall.protocols.http1.head import Limits, ParseError, RequestHead

BACKENDS: list[type[HTTP1]] = [HttptoolsHTTP1, H11HTTP1]


def backends(*, httptools: str | None = None, h11: str | None = None) -> list[Any]:
    """Both backends as pytest params; a reason marks that backend strict-xfail."""
    out = []
    for cls, reason in ((HttptoolsHTTP1, httptools), (H11HTTP1, h11)):
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param(cls, id=cls.backend, marks=marks))
    return out


class Recorder:
    """Records the calls a parser backend makes, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.heads: list[RequestHead] = []

    def on_request(self, head: RequestHead) -> None:
        self.heads.append(head)
        self.calls.append(
            ("request", head.method, head.target, head.http_version, list(head.headers))
        )

    def on_body(self, data: bytes) -> None:
        self.calls.append(("body", bytes(data)))

    def on_request_end(self) -> None:
        self.calls.append(("end",))

    def merged(self) -> list[tuple[Any, ...]]:
        """The calls with consecutive body pieces joined (splitting is not behaviour)."""
        out: list[tuple[Any, ...]] = []
        for call in self.calls:
            if call[0] == "body" and out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + call[1])
            elif call[0] == "body" and not call[1]:
                continue
            else:
                out.append(call)
        return out


def feed(
    backend: type[HTTP1],
    data: bytes,
    limits: Limits | None = None,
    step: int | None = None,
) -> Recorder:
    """Feed ``data`` (whole, or ``step`` bytes at a time) to a fresh backend."""
    rec = Recorder()
    proto = backend(rec, limits)
    if step is None:
        proto.feed(data)
    else:
        for i in range(0, len(data), step):
            proto.feed(data[i : i + step])
    return rec


def parse_error(
    backend: type[HTTP1],
    data: bytes,
    limits: Limits | None = None,
    step: int | None = None,
) -> ParseError:
    """Feed ``data`` and return the ParseError it must raise."""
    with pytest.raises(ParseError) as info:
        feed(backend, data, limits, step)
    return info.value
