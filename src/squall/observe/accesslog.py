"""Access-log lines in Gunicorn's atom syntax (``--access-log-format``) and as fields.

Atoms (``%(x)s``): ``h`` client address, ``l`` and ``u`` ``-``, ``t`` date,
``r`` request line, ``m`` method, ``U`` path, ``q`` query, ``H`` protocol,
``s`` status, ``B`` body bytes, ``b`` bytes or ``-``, ``f`` referer, ``a``
user agent, ``T`` seconds, ``M`` milliseconds, ``D`` microseconds, ``L``
decimal seconds, ``p`` process id, ``{name}i`` a request header and
``{name}o`` a response header. Every request-derived value is escaped, so
control characters never reach a log (CVE-2020-7694).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from squall.asgi.scope import format_address

if TYPE_CHECKING:
    from squall.asgi.scope import ConnInfo

# C0, DEL and C1 (0x9b is CSI, a terminal escape on its own)
_CTRL = {i: f"\\x{i:02x}" for i in [*range(32), *range(127, 160)]}


def escape_for_log(text: str) -> str:
    """Make request-derived text safe for terminals and log files (CVE-2020-7694)."""
    return text.translate(_CTRL)


def _header(headers: Any, name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return escape_for_log(value.decode("latin-1"))
    return "-"


class AccessAtoms(dict[str, str]):
    """The atoms of one response; ``{name}i``/``{name}o`` are looked up on demand."""

    def __init__(self, cycle: Any, info: ConnInfo, duration: float) -> None:
        scope = cycle.scope
        self.scope = scope
        self.response_headers = getattr(cycle, "headers", ()) or ()
        method = scope.get("method", "GET")
        path = quote(scope["path"])
        query = escape_for_log(scope["query_string"].decode("latin-1"))
        protocol = f"HTTP/{scope['http_version']}"
        sent = getattr(cycle, "sent", 0)
        label = client_label(scope, info)
        client = label.rsplit(":", 1)[0] if label != "-" else "-"
        super().__init__(
            h=client,
            l="-",
            u="-",
            t=time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
            r=f"{method} {path}{'?' + query if query else ''} {protocol}",
            m=method,
            U=path,
            q=query,
            H=protocol,
            s=str(cycle.status),
            B=str(sent),
            b=str(sent) if sent else "-",
            T=str(int(duration)),
            M=f"{duration * 1000:.0f}",
            D=str(int(duration * 1_000_000)),
            L=f"{duration:.6f}",
            p=f"<{os.getpid()}>",
        )

    def __missing__(self, key: str) -> str:
        if key == "f":
            return _header(self.scope["headers"], b"referer")
        if key == "a":
            return _header(self.scope["headers"], b"user-agent")
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name = key[1:-2].lower().encode("latin-1")
            if key[-1] == "i":
                return _header(self.scope["headers"], name)
            if key[-1] == "o":
                return _header(self.response_headers, name)
        return "-"


def client_label(scope: Any, info: ConnInfo) -> str:
    """The client as the app saw it: the forwarded one behind a trusted proxy."""
    client = scope.get("client", info.client)
    if client is info.client:  # the socket's peer, untouched by proxy headers
        return info.client_label
    return format_address(client)


def access_fields(cycle: Any, info: ConnInfo, duration: float) -> dict[str, Any]:
    """The structured fields of an access record (for JSON logs)."""
    scope = cycle.scope
    return {
        "client": client_label(scope, info),
        "method": scope.get("method", "GET"),
        "path": escape_for_log(scope["path"]),
        "query": escape_for_log(scope["query_string"].decode("latin-1")),
        "http_version": scope["http_version"],
        "status": cycle.status,
        "bytes": getattr(cycle, "sent", 0),
        "duration_ms": round(duration * 1000, 3),
    }
