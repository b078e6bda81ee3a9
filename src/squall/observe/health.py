"""The ``--health-path`` answer: 200 while serving, 503 once shutting down."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from squall.asgi.types import Receive, Scope, Send


class Serving(Protocol):
    @property
    def shutting_down(self) -> bool: ...


def health_app(state: Serving) -> Any:
    """The ``--health-path`` answer: 200 while serving, 503 once shutting down."""

    async def health(scope: Scope, receive: Receive, send: Send) -> None:
        down = state.shutting_down
        body = b"shutting down\n" if down else b"ok\n"
        await send(
            {
                "type": "http.response.start",
                "status": 503 if down else 200,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return health
