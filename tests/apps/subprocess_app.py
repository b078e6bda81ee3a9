"""An app for tests that run Squall as a subprocess (``tests.apps.subprocess_app:app``).

Paths:

* ``/slow`` prints ``SLOW-STARTED`` and answers once the file named by
  ``$SQUALL_TEST_RELEASE`` exists (the test creates it when it is ready);
* ``/forever`` prints ``FOREVER-STARTED`` and never answers;
* anything else answers ``hello <path>``.

Lifespan events are printed as ``LIFESPAN <event>``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any


async def _respond(send: Any, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            print("LIFESPAN", message["type"], flush=True)
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/slow":
        print("SLOW-STARTED", flush=True)
        release = os.environ["SQUALL_TEST_RELEASE"]
        while not os.path.exists(release):
            await asyncio.sleep(0.01)
        await _respond(send, b"slow done")
    elif path == "/forever":
        print("FOREVER-STARTED", flush=True)
        await asyncio.Event().wait()
    else:
        await _respond(send, b"hello " + path.encode())
