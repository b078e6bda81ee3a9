"""Optional compiled build: ``SQUALL_COMPILE=1`` compiles the hot modules with mypyc.

Without it (the default) Squall is pure Python. With it, the modules below
become C extensions built from the same typed source; everything else stays
Python. Build with mypy installed and no build isolation:

    pip install mypy 'setuptools>=77' .
    SQUALL_COMPILE=1 pip install --no-build-isolation --no-deps --force-reinstall .

``scripts/compile DEST`` builds the same modules into a separate folder
instead (used by the test suite and the benchmark to run both builds).
"""

from __future__ import annotations

import os

# The per-request path of HTTP/1.1, HTTP/2 and WebSocket. A module listed here
# must not define classes deriving from built-ins other than Exception (those
# live in squall/errors.py) and must not be monkeypatched.
HOT_MODULES = [
    "squall/connection/port.py",
    "squall/connection/transport.py",
    "squall/connection/admit.py",
    "squall/connection/h1.py",
    "squall/connection/ws.py",
    "squall/connection/h2.py",
    "squall/connection/h2streams.py",
    "squall/connection/h2deadlines.py",
    "squall/asgi/http.py",
    "squall/asgi/scope.py",
    "squall/asgi/websocket.py",
    "squall/protocols/http1/base.py",
    "squall/protocols/http1/head.py",
    "squall/protocols/http1/backend_httptools.py",
    "squall/protocols/http1/backend_h11.py",
    "squall/protocols/http1/chunked.py",
    "squall/protocols/http2/frames.py",
    "squall/protocols/http2/guard.py",
    "squall/protocols/http2/flow.py",
    "squall/protocols/http2/inbound.py",
    "squall/protocols/http2/hpack.py",
    "squall/protocols/http2/fields.py",
    "squall/protocols/websocket/framing.py",
]

if __name__ == "__main__":
    from setuptools import setup

    ext_modules = []
    if os.environ.get("SQUALL_COMPILE") == "1":
        from mypyc.build import mypycify

        ext_modules = mypycify([f"src/{path}" for path in HOT_MODULES], opt_level="3")
    setup(ext_modules=ext_modules)
