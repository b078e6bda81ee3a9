"""Fixtures of the framework compatibility tests.

``protocol`` runs a test over HTTP/1.1 and over HTTP/2 (cleartext prior
knowledge); ``http`` builds an ``httpx.Client`` for a running server that
speaks that protocol and checks every response came back over it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

PROTOCOLS = ["http1", "http2"]
HTTP_VERSIONS = {"http1": "HTTP/1.1", "http2": "HTTP/2"}


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def http(protocol: str) -> Iterator[Callable[..., httpx.Client]]:
    """``http(srv)``: an httpx client for ``srv`` over ``protocol`` (closed after the test)."""
    clients: list[httpx.Client] = []
    expected = HTTP_VERSIONS[protocol]

    def check_version(response: httpx.Response) -> None:
        assert response.http_version == expected, f"answered over {response.http_version}"

    def make(srv: Any, **options: Any) -> httpx.Client:
        options.setdefault("timeout", 10)
        client = httpx.Client(
            base_url=srv.url,
            http1=protocol == "http1",
            http2=protocol == "http2",
            event_hooks={"response": [check_version]},
            **options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
