"""HTTP/2 conformance cases in the manner of h2spec (RFC 9113, RFC 7541)."""

from __future__ import annotations
