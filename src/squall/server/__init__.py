"""The server: listening sockets, the accept loop, startup and graceful shutdown.

It creates one :class:`~squall.connection.transport.Connection` per accepted
socket; everything a connection does after that lives in :mod:`squall.connection`."""

from __future__ import annotations

from squall.server.serve import Server

__all__ = ["Server"]
