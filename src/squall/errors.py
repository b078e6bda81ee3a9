"""Exceptions whose base is a built-in other than ``Exception``.

They live in this small module, which is never compiled, because mypyc
cannot compile a class deriving from ``RuntimeError`` or ``OSError``; the
modules that raise them are (see ``setup.py``).
"""

from __future__ import annotations


class ResponseError(RuntimeError):
    """The app sent a response that cannot be put on the wire as given."""


class ClientDisconnected(OSError):
    """``send()`` on a WebSocket whose client has gone."""
