"""Fixtures of the h2spec cases: one server per test, a client connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.compliance.h2spec.h2client import H2Conn, app


@pytest.fixture
def h2_server(serve: Any, fast_tick: None) -> Any:
    """A server running ``h2client.app`` with the default HTTP/2 settings."""
    return serve(app)


@pytest.fixture
def h2_raw(h2_server: Any) -> Iterator[H2Conn]:
    """A connection that has not sent anything yet."""
    conn = H2Conn(h2_server.port)
    yield conn
    conn.close()


@pytest.fixture
def h2(h2_raw: H2Conn) -> H2Conn:
    """A connection after h2spec's handshake (prefaces and SETTINGS exchanged and acked)."""
    h2_raw.handshake()
    return h2_raw
