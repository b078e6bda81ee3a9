"""Abuse accounting for one HTTP/2 connection: :class:`Guard`.

Three budgets, each crossed by a connection error ENHANCE_YOUR_CALM:

* cheap frames (PING, SETTINGS, PRIORITY, empty DATA and CONTINUATION) draw
  on a token bucket of ``CHEAP_BURST`` tokens refilled at ``CHEAP_RATE`` per
  second;
* streams reset before their response completed, by the peer (Rapid Reset)
  or by us after a peer error (MadeYouReset), are counted against the
  streams opened;
* control frames queued in answer to the peer (SETTINGS ACK, PING ACK,
  RST_STREAM) that the transport has not taken yet are bounded; the owner
  zeroes ``control_queued`` once the transport flushed.
"""

from __future__ import annotations

import time

from squall.protocols.http2.frames import ENHANCE_YOUR_CALM, H2ConnectionError

# cheap-frame budget: a bucket of CHEAP_BURST tokens refilled at CHEAP_RATE per second
CHEAP_BURST = 1000
CHEAP_RATE = 100.0
# premature resets: judged once this many streams were opened ...
RESET_MIN_STREAMS = 200
CONTROL_QUEUE_LIMIT = 1000  # outbound control frames the transport has not taken


class Guard:
    """The counters and budgets; each check raises :class:`H2ConnectionError` when crossed."""

    __slots__ = (
        "cheap_last",
        "cheap_tokens",
        "control_queued",
        "max_concurrent_streams",
        "premature_resets",
        "streams_opened",
    )

    def __init__(self, max_concurrent_streams: int) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.cheap_tokens = float(CHEAP_BURST)
        self.cheap_last = time.monotonic()
        self.streams_opened = 0
        self.premature_resets = 0
        self.control_queued = 0

    def spend(self) -> None:
        """One cheap frame drawn from the bucket."""
        now = time.monotonic()
        tokens = self.cheap_tokens + (now - self.cheap_last) * CHEAP_RATE
        self.cheap_last = now
        tokens = min(tokens, CHEAP_BURST)
        tokens -= 1
        self.cheap_tokens = tokens
        if tokens < 0:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Flood of control or empty frames")

    def premature_reset(self) -> None:
        """A stream reset before its response completed."""
        self.premature_resets += 1
        resets = self.premature_resets
        if resets > 2 * self.max_concurrent_streams + RESET_MIN_STREAMS or (
            self.streams_opened >= RESET_MIN_STREAMS and 2 * resets > self.streams_opened
        ):
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Too many streams reset")

    def control(self) -> None:
        """One control frame queued in answer to the peer."""
        self.control_queued += 1
        if self.control_queued > CONTROL_QUEUE_LIMIT:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "Too many control frames queued")
