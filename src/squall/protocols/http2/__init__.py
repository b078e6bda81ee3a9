"""HTTP/2 (RFC 9113) as a sans-I/O protocol object, with HPACK and field rules.

The rest of Squall imports the protocol's public names from this package.
"""

from __future__ import annotations

from squall.protocols.http2.connection import *  # noqa: F403
