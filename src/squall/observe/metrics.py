"""Prometheus metrics (``--metrics HOST:PORT``).

Each process counts into a :class:`Metrics`; :meth:`Metrics.snapshot` adds the
gauges read at that moment (open connections by protocol, open WebSocket
sessions). With ``--workers`` every worker sends its snapshot to the
supervisor with its heartbeat, and the supervisor serves the sum (counters of
workers that have exited are kept, so they never go backwards) plus its own
``squall_worker_restarts_total``. Without workers the server serves its own.
:func:`render` writes the Prometheus text format (version 0.0.4).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROTOCOLS = ("http/1.1", "h2", "websocket")


class Metrics:
    __slots__ = ("buckets", "bytes_in", "bytes_out", "duration_count", "duration_sum", "requests")

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}  # "protocol|class" -> count
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.duration_sum = 0.0
        self.duration_count = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def observe(self, protocol: str, status: int, duration: float, sent: int) -> None:
        key = f"{protocol}|{status // 100}xx"
        self.requests[key] = self.requests.get(key, 0) + 1
        self.bytes_out += sent
        self.duration_sum += duration
        self.duration_count += 1
        for index, bound in enumerate(BUCKETS):
            if duration <= bound:
                self.buckets[index] += 1
                return
        self.buckets[-1] += 1

    def snapshot(self, gauges: Iterable[tuple[str, int]] = ()) -> dict[str, Any]:
        """The counters, and the gauges: one (protocol, open WebSockets) per connection."""
        connections = dict.fromkeys(PROTOCOLS, 0)
        websockets = 0
        for protocol, sessions in gauges:
            connections[protocol] += 1
            websockets += sessions
        return {
            "requests": dict(self.requests),
            "buckets": list(self.buckets),
            "duration_sum": self.duration_sum,
            "duration_count": self.duration_count,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "connections": connections,
            "websockets": websockets,
        }


def combine(snapshots: list[dict[str, Any]]) -> dict[str, Any]:
    total = Metrics().snapshot()
    for snap in snapshots:
        for key, count in snap.get("requests", {}).items():
            total["requests"][key] = total["requests"].get(key, 0) + count
        total["buckets"] = [a + b for a, b in zip(total["buckets"], snap["buckets"], strict=True)]
        for name in ("duration_sum", "duration_count", "bytes_in", "bytes_out", "websockets"):
            total[name] += snap.get(name, 0)
        for protocol, count in snap.get("connections", {}).items():
            total["connections"][protocol] = total["connections"].get(protocol, 0) + count
    return total


def counters_only(snapshot: dict[str, Any]) -> dict[str, Any]:
    """What of an exited worker's snapshot stays in the sums: its counters."""
    kept = dict(snapshot)
    kept["connections"] = {}
    kept["websockets"] = 0
    return kept


def render(snapshot: dict[str, Any], restarts: int | None = None) -> str:
    lines = [
        "# HELP squall_requests_total Responses sent, by protocol and status class.",
        "# TYPE squall_requests_total counter",
    ]
    for key, count in sorted(snapshot["requests"].items()):
        protocol, status = key.split("|")
        lines.append(f'squall_requests_total{{protocol="{protocol}",status="{status}"}} {count}')
    lines += [
        "# HELP squall_request_duration_seconds Time from request to complete response.",
        "# TYPE squall_request_duration_seconds histogram",
    ]
    cumulative = 0
    for bound, count in zip((*BUCKETS, "+Inf"), snapshot["buckets"], strict=True):
        cumulative += count
        lines.append(f'squall_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
    lines.append(f"squall_request_duration_seconds_sum {snapshot['duration_sum']}")
    lines.append(f"squall_request_duration_seconds_count {snapshot['duration_count']}")
    lines += [
        "# HELP squall_open_connections Open connections, by protocol.",
        "# TYPE squall_open_connections gauge",
    ]
    for protocol in PROTOCOLS:
        count = snapshot["connections"].get(protocol, 0)
        lines.append(f'squall_open_connections{{protocol="{protocol}"}} {count}')
    lines += [
        "# HELP squall_open_websockets Open WebSocket sessions.",
        "# TYPE squall_open_websockets gauge",
        f"squall_open_websockets {snapshot['websockets']}",
        "# HELP squall_received_bytes_total Bytes received from clients.",
        "# TYPE squall_received_bytes_total counter",
        f"squall_received_bytes_total {snapshot['bytes_in']}",
        "# HELP squall_sent_body_bytes_total Response body bytes sent.",
        "# TYPE squall_sent_body_bytes_total counter",
        f"squall_sent_body_bytes_total {snapshot['bytes_out']}",
    ]
    if restarts is not None:
        lines += [
            "# HELP squall_worker_restarts_total Workers replaced after they died or hung.",
            "# TYPE squall_worker_restarts_total counter",
            f"squall_worker_restarts_total {restarts}",
        ]
    return "\n".join(lines) + "\n"


def http_answer(body: str) -> bytes:
    data = body.encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%b" % (len(data), data)
    )


class MetricsProtocol(asyncio.Protocol):
    """The metrics listener: any request gets the current text, then the connection closes."""

    def __init__(self, answer: Callable[[], bytes]) -> None:
        self.answer = answer
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and self.transport is not None:
            self.transport.write(self.answer())
            self.transport.close()
        elif len(self.buffer) > 8192 and self.transport is not None:
            self.transport.close()
