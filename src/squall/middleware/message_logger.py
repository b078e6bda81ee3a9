"""Logs every ASGI message at TRACE level on ``squall.asgi``; bodies are elided."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from squall.asgi.types import ASGIApp, Message, Receive, Scope, Send

TRACE = 5
logger = logging.getLogger("squall.asgi")


def _summary(message: Any) -> dict[str, Any]:
    out = dict(message)
    for key in ("body", "bytes", "text"):
        if key in out and out[key] is not None:
            out[key] = f"<{len(out[key])} {'chars' if key == 'text' else 'bytes'}>"
    if "headers" in out:
        out["headers"] = f"<{len(out['headers'])} headers>"
    return out


class MessageLoggerMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.count += 1
        task = f"ASGI [{self.count}]"
        logger.log(TRACE, "%s Started scope=%s", task, _summary(scope))

        async def logged_receive() -> Message:
            message = await receive()
            logger.log(TRACE, "%s Receive %s", task, _summary(message))
            return message

        async def logged_send(message: Message) -> None:
            logger.log(TRACE, "%s Send %s", task, _summary(message))
            await send(message)

        try:
            await self.app(scope, logged_receive, logged_send)
        except BaseException:
            logger.log(TRACE, "%s Raised exception", task)
            raise
        logger.log(TRACE, "%s Completed", task)
