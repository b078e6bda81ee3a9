"""``Upgrade: h2c`` (RFC 7540 3.2): an HTTP/1.1 request that turns the
connection into HTTP/2.

The request becomes HTTP/2 stream 1 at once (its app starts and reads the
body), but its body still arrives as HTTP/1.1, and a ``100 Continue`` it
earns goes out as HTTP/1.1 too. Only once the whole body is read does the
HTTP/1 handler write the ``101 Switching Protocols`` and hand the connection
to the HTTP/2 handler, which held its preface and frames until then.

An upgrade is ignored (the request is served as HTTP/1.1) over TLS, for
CONNECT, and without exactly one valid ``HTTP2-Settings`` field. Settings
that do not parse get the 101 and then an HTTP/2 connection error.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from squall.connection.h2 import H2Handler

if TYPE_CHECKING:
    from squall.asgi.http import HTTPCycle
    from squall.connection.port import ConnectionPort
    from squall.protocols.http1.head import RequestHead

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class H2cUpgrade:
    __slots__ = ("cycle", "h2", "port")

    def __init__(self, port: ConnectionPort, h2: H2Handler, cycle: HTTPCycle | None) -> None:
        self.port = port
        self.h2 = h2
        self.cycle = cycle  # stream 1's cycle; None if the settings were refused

    @classmethod
    def start(cls, port: ConnectionPort, head: RequestHead) -> H2cUpgrade | None:
        """Begin the upgrade; None to serve the request as HTTP/1.1."""
        if port.info.scheme == "https" or head.method == "CONNECT":
            return None
        settings = [v for n, v in head.headers if n == b"http2-settings"]
        if len(settings) != 1:
            return None
        try:
            payload = base64.urlsafe_b64decode(settings[0] + b"=" * (-len(settings[0]) % 4))
        except (ValueError, binascii.Error):
            return None
        head.switching = True
        h2 = H2Handler(port, interim=_continue_as_http1)
        try:
            cycle = h2.upgrade(head, payload)
        except Exception:  # bad HTTP2-Settings: the 101 is due, then a connection error
            h2.fail_settings()
            return cls(port, h2, None)
        return cls(port, h2, cycle)

    def switch(self) -> H2Handler:
        """The request is read: 101, then the HTTP/2 handler takes the connection."""
        self.port.write(SWITCHING)
        return self.h2


def _continue_as_http1(port: ConnectionPort) -> None:
    port.write(CONTINUE)
