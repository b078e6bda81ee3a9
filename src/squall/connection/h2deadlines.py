"""The deadlines of HTTP/2 streams: request body and write stall, per stream.

An HTTP/1.1 connection has one request at a time, so its deadlines are the
connection's. An HTTP/2 connection multiplexes streams, and one slow stream
must not hold the others or the connection; so each stream gets the same
two deadlines an HTTP/1.1 request has:

* **request body** (``--timeout-request-body``): a stream whose body stops
  arriving while its app waits for it gets 408, or RST_STREAM(CANCEL) once
  the response has begun. A stream whose app does not read is not timed:
  the peer is held back by flow control, not at fault.
* **write stall** (``--timeout-write``): a stream with data waiting for the
  peer's flow-control window that the peer does not open for that long is
  reset with RST_STREAM(CANCEL), and its app sees ``http.disconnect``.

The handler runs one connection deadline, :attr:`Deadline.STREAMS
<squall.connection.port.Deadline.STREAMS>`, at the soonest of them; when it
fires, :meth:`StreamDeadlines.expired` sweeps the streams. Times come from the
connection's clock, so tests can drive them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from squall.connection.h2streams import H2Stream
from squall.connection.port import Deadline
from squall.protocols import http2 as h2

if TYPE_CHECKING:
    from squall.connection.h2streams import StreamOwner

logger = logging.getLogger("squall.error")


class StreamDeadlines:
    __slots__ = ("_at", "_stalled", "handler")

    def __init__(self, handler: StreamOwner) -> None:
        self.handler = handler
        self._at = 0.0  # when the STREAMS deadline is armed for (0: not armed)
        # stream id -> (bytes waiting for window when last seen, since when)
        self._stalled: dict[int, tuple[int, float]] = {}

    def _arm(self, when: float) -> None:
        at = self._at
        if at == 0.0 or when < at:
            self._at = when
            port = self.handler.port
            port.set_deadline(Deadline.STREAMS, max(0.0, when - port.now()))

    def body_started(self, stream: H2Stream) -> None:
        """A request body is expected on ``stream``."""
        handler = self.handler
        when = handler.port.now() + handler.server.config.timeout_request_body
        stream.body_deadline = when
        self._arm(when)

    def body_received(self, stream: H2Stream) -> None:
        """Body bytes arrived: the stream's body deadline moves on (the sweep re-arms)."""
        handler = self.handler
        stream.body_deadline = handler.port.now() + handler.server.config.timeout_request_body

    def writes_blocked(self) -> None:
        """Some streams wait for the peer's window: time them from now."""
        blocked = self.handler.proto.blocked
        stalled = self._stalled
        now = 0.0
        for stream_id, state in blocked.items():
            if stream_id not in stalled:
                if not now:
                    now = self.handler.port.now()
                stalled[stream_id] = (state.pending_size, now)
        if now:
            self._arm(now + self.handler.server.config.timeout_write)

    def idle(self) -> None:
        """No stream is open: nothing to time (the keep-alive deadline runs instead)."""
        self._at = 0.0

    def expired(self) -> None:
        """The STREAMS deadline passed: reset or answer the streams that are due."""
        self._at = 0.0
        handler = self.handler
        config = handler.server.config
        now = handler.port.now()
        soonest = 0.0
        for stream in list(handler.streams.values()):
            if not isinstance(stream, H2Stream) or stream.id not in handler.streams:
                continue
            when = stream.body_deadline
            if not when:
                continue
            if stream.body_paused:  # the app is not reading: not the peer's fault
                when = stream.body_deadline = now + config.timeout_request_body
            elif when <= now:
                logger.info("%s - Request body timed out: 408", handler.port.info.client_label)
                stream.body_timeout()
                continue
            if not soonest or when < soonest:
                soonest = when
        proto = handler.proto
        stalled = self._stalled
        for stream_id in [s for s in stalled if s not in proto.blocked]:
            del stalled[stream_id]
        for stream_id, state in list(proto.blocked.items()):
            seen = stalled.get(stream_id)
            if seen is None or seen[0] != state.pending_size:  # new, or the peer took some
                seen = stalled[stream_id] = (state.pending_size, now)
            when = seen[1] + config.timeout_write
            if when <= now:
                logger.info(
                    "%s - Stream %d: no flow-control window for --timeout-write: reset",
                    handler.port.info.client_label,
                    stream_id,
                )
                del stalled[stream_id]
                proto.reset(stream_id, h2.CANCEL)
                continue
            if not soonest or when < soonest:
                soonest = when
        handler.schedule_flush()
        if soonest:
            self._arm(soonest)
        elif not handler.streams and not proto.blocked:
            handler.went_idle()
