"""Sending a file's bytes on a connection, zero-copy where the socket allows.

On a plain TCP socket :func:`send_file` calls ``os.sendfile`` while the
transport has nothing buffered; when the socket is full it writes one chunk
through the transport (which buffers it) and waits until the buffer is empty
again, so order is kept. Under TLS, or where ``sendfile`` is refused, the
file is read in chunks and written through the transport with back-pressure.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

CHUNK = 262144


class FileSink(Protocol):
    @property
    def write_paused(self) -> bool: ...

    async def drain(self) -> None: ...


class FileShorterThanCount(RuntimeError):
    """The file ended before ``count`` bytes were sent."""


async def send_file(
    transport: asyncio.Transport, sink: FileSink, fd: int, offset: int, count: int, zero_copy: bool
) -> None:
    out_fd = -1
    if zero_copy and hasattr(os, "sendfile"):
        sock = transport.get_extra_info("socket")
        out_fd = sock.fileno() if sock is not None else -1
    if out_fd >= 0:
        transport.set_write_buffer_limits(high=65536, low=0)  # resumed only when empty
    try:
        while count > 0:
            if transport.is_closing():
                return
            if out_fd >= 0 and not transport.get_write_buffer_size():
                try:
                    sent = os.sendfile(out_fd, fd, offset, count)
                except BlockingIOError:
                    sent = -1
                except OSError:
                    out_fd = -1  # not a file sendfile takes: read and write instead
                    continue
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
                if sent == 0:
                    raise FileShorterThanCount("The file ended before 'count' bytes")
            chunk = os.pread(fd, min(count, CHUNK), offset)
            if not chunk:
                raise FileShorterThanCount("The file ended before 'count' bytes")
            transport.write(chunk)
            offset += len(chunk)
            count -= len(chunk)
            if sink.write_paused:
                await sink.drain()
    finally:
        if out_fd >= 0 and not transport.is_closing():
            transport.set_write_buffer_limits()
