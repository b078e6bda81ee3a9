"""WebSocket protocol conformance (Autobahn TestSuite cases run by kosoku)."""

from __future__ import annotations
