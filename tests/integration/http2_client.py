"""HTTP/2 clients for the integration tests, over real sockets.

* :class:`H2Client` drives the ``h2`` library's client state machine (an
  independent implementation that checks every frame the server sends).
* :class:`FrameClient` reads and writes raw frames (HPACK from ``hpack``), for
  what ``h2`` will not let a client see: frames after a GOAWAY, exact frame
  flags, the end of the connection.

Also shared by the HTTP/2 test modules: :func:`recording_app`, TLS certificates
(:func:`write_certs`).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import trustme

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# frame types, flags, error codes (RFC 9113)
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR = 0, 1, 2
INITIAL_WINDOW_SIZE = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE

Headers = list[tuple[bytes, bytes]]


def values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


def one(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    found = values(headers, name)
    assert len(found) == 1, f"{name!r} appears {len(found)} times in {headers}"
    return found[0]


def status_of(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return int(one(headers, b":status"))


def tls_context(cafile: str, alpn: list[str] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(alpn or ["h2"])
    return context


@dataclass
class StreamResult:
    """What came back on one stream."""

    informational: list[Headers] = field(default_factory=list)
    headers: Headers | None = None
    data: bytearray = field(default_factory=bytearray)
    data_frames: int = 0
    trailers: Headers | None = None
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code
    order: list[str] = field(default_factory=list)  # event kinds in arrival order

    @property
    def status(self) -> int:
        assert self.headers is not None, "no response headers"
        return status_of(self.headers)

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """One HTTP/2 connection driven by ``h2.connection.H2Connection``."""

    def __init__(
        self,
        port: int,
        *,
        context: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        timeout: float = 5.0,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.timeout = timeout
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_inbound_headers=False,  # the tests check the raw fields themselves
            normalize_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_ack = True  # give received DATA back to the server's window at once
        self.events: list[h2.events.Event] = []
        self.streams: dict[int, StreamResult] = {}
        self.window_updates: list[tuple[int, int]] = []  # (stream id, increment)
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self._acks_due = 1 + bool(settings)
        self._pings = 0
        self._remote_settings = False
        self.flush()
        self.wait(lambda: self._remote_settings and not self._acks_due, what="the handshake")

    # -- plumbing

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self) -> None:
        """One read from the socket; its events are recorded."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._record(event)
        self.flush()

    def wait(self, predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert not self.closed, f"connection closed while waiting for {what or predicate}"
            assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
            self.pump()

    def _stream(self, stream_id: int) -> StreamResult:
        return self.streams.setdefault(stream_id, StreamResult())

    def _record(self, event: h2.events.Event) -> None:
        self.events.append(event)
        if isinstance(event, h2.events.RemoteSettingsChanged):
            self._remote_settings = True
        elif isinstance(event, h2.events.SettingsAcknowledged):
            self._acks_due -= 1
        elif isinstance(event, h2.events.PingAckReceived):
            self._pings -= 1
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_updates.append((event.stream_id, event.delta))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.InformationalResponseReceived):
            stream = self._stream(event.stream_id)
            stream.informational.append(list(event.headers))
            stream.order.append("informational")
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self._stream(event.stream_id)
            stream.headers = list(event.headers)
            stream.order.append("headers")
        elif isinstance(event, h2.events.DataReceived):
            stream = self._stream(event.stream_id)
            stream.data += event.data
            stream.data_frames += 1
            stream.order.append("data")
            if self.auto_ack and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            stream = self._stream(event.stream_id)
            stream.trailers = list(event.headers)
            stream.order.append("trailers")
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._stream(event.stream_id)
            stream.ended = True
            stream.order.append("end")
        elif isinstance(event, h2.events.StreamReset):
            stream = self._stream(event.stream_id)
            stream.reset = event.error_code
            stream.order.append("reset")

    # -- requests

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Iterable[tuple[str | bytes, str | bytes]] = (),
        body: bytes | None = None,
        end_stream: bool = True,
        authority: str = "127.0.0.1",
        scheme: str = "http",
    ) -> int:
        """Open a stream; with ``body``, send it all (waiting for window as needed)."""
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", scheme.encode()),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ]
        fields += [
            (n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v)
            for n, v in headers
        ]
        self._stream(stream_id)
        self.conn.send_headers(stream_id, fields, end_stream=end_stream and body is None)
        self.flush()
        if body is not None:
            self.send_body(stream_id, body, end_stream=end_stream)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end_stream: bool = True) -> None:
        """Send ``body`` as far as the windows allow, waiting for WINDOW_UPDATEs."""
        view = memoryview(body)
        while view:
            self.wait(
                lambda: self.conn.local_flow_control_window(stream_id) > 0,
                what=f"send window on stream {stream_id}",
            )
            size = min(
                len(view),
                self.conn.local_flow_control_window(stream_id),
                self.conn.max_outbound_frame_size,
            )
            self.conn.send_data(stream_id, bytes(view[:size]))
            view = view[size:]
            self.flush()
        if end_stream:
            self.conn.end_stream(stream_id)
            self.flush()

    def response(self, stream_id: int, timeout: float = 5.0) -> StreamResult:
        """Wait until the stream ended or was reset."""
        stream = self._stream(stream_id)
        self.wait(lambda: stream.done, timeout, what=f"the end of stream {stream_id}")
        return stream

    def get(self, path: str = "/", **kw) -> StreamResult:
        return self.response(self.request(path, **kw))

    def ping(self) -> None:
        """A round trip: everything the server sent before its PING ACK has arrived."""
        self._pings += 1
        self.conn.ping(struct.pack(">Q", self._pings + 1000))
        self.flush()
        self.wait(lambda: self._pings == 0, what="PING ACK")

    def wait_closed(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            assert time.monotonic() < deadline, "the server did not close the connection"
            self.pump()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Frame:
    type: int
    flags: int
    stream_id: int
    payload: bytes
    headers: Headers | None = None  # HEADERS (with its CONTINUATIONs), decoded

    @property
    def goaway(self) -> tuple[int, int]:
        """(last stream id, error code) of a GOAWAY."""
        assert self.type == GOAWAY, f"not a GOAWAY: {self}"
        last, code = struct.unpack(">LL", self.payload[:8])
        return last & 0x7FFFFFFF, code

    @property
    def error_code(self) -> int:
        assert self.type == RST_STREAM, f"not a RST_STREAM: {self}"
        return int.from_bytes(self.payload[:4], "big")


class FrameClient:
    """A raw HTTP/2 connection: frames in, frames out, and what the server closes."""

    def __init__(
        self,
        port: int,
        timeout: float = 5.0,
        preface: bool = True,
        context: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.scheme = "https" if context is not None else "http"
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.buf = b""
        self.closed = False
        if preface:
            self.sock.sendall(PREFACE + self.frame(SETTINGS, 0, 0, b""))

    @staticmethod
    def frame(ftype: int, flags: int, stream_id: int, payload: bytes) -> bytes:
        size = len(payload)
        return struct.pack(">HBBBL", size >> 8, size & 0xFF, ftype, flags, stream_id) + payload

    def send(self, ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        self.sock.sendall(self.frame(ftype, flags, stream_id, payload))

    def get(self, stream_id: int, path: str = "/", method: str = "GET") -> None:
        block = self.encoder.encode(
            [
                (":method", method),
                (":scheme", self.scheme),
                (":authority", "127.0.0.1"),
                (":path", path),
            ]
        )
        self.send(HEADERS, END_HEADERS | END_STREAM, stream_id, block)

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError):
                data = b""
            if not data:
                self.closed = True
                return False
            self.buf += data
        return True

    def read_frame(self) -> Frame | None:
        """The next frame (SETTINGS are acknowledged); None once the server closed."""
        if not self._need(9):
            assert not self.buf, f"truncated frame header: {self.buf!r}"
            return None
        hi, lo, ftype, flags, stream_id = struct.unpack(">HBBBL", self.buf[:9])
        size = hi << 8 | lo
        assert self._need(9 + size), "truncated frame"
        payload, self.buf = self.buf[9 : 9 + size], self.buf[9 + size :]
        frame = Frame(ftype, flags, stream_id & 0x7FFFFFFF, payload)
        if ftype == SETTINGS and not flags & ACK:
            self.send(SETTINGS, ACK, 0)
        elif ftype == HEADERS:
            block = payload
            while not frame.flags & END_HEADERS:
                more = self.read_frame()
                assert more is not None and more.type == CONTINUATION, "header block cut"
                block += more.payload
                frame.flags |= more.flags & END_HEADERS
            frame.headers = [(bytes(n), bytes(v)) for n, v in self.decoder.decode(block, raw=True)]
        return frame

    def until(self, predicate: Callable[[Frame], object]) -> list[Frame]:
        """Frames up to and including the first that matches."""
        frames = []
        while True:
            frame = self.read_frame()
            assert frame is not None, f"closed before a matching frame; got {frames}"
            frames.append(frame)
            if predicate(frame):
                return frames

    def until_closed(self) -> list[Frame]:
        frames = []
        while (frame := self.read_frame()) is not None:
            frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()


# -- shared by the test modules


def recording_app(scopes: list[dict]):
    """Reads the whole body; answers "<http_version> <scheme> <method> <path>", or for
    /hash "<length> <sha256>" of the body it received."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        scopes.append(scope)
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/hash":
            out = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
        else:
            out = " ".join(
                (scope["http_version"], scope["scheme"], scope["method"], scope["path"])
            ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


def digest(data: bytes) -> str:
    return f"{len(data)} {hashlib.sha256(data).hexdigest()}"


def write_certs(folder: Path) -> dict[str, str]:
    """A CA (``ca``) and a certificate for 127.0.0.1 with its key (``server``)."""
    ca = trustme.CA()
    paths = {"server": folder / "server.pem", "ca": folder / "ca.pem"}
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(paths["server"])
    )
    ca.cert_pem.write_to_path(str(paths["ca"]))
    return {name: str(path) for name, path in paths.items()}


def https(srv) -> str:
    return f"https://127.0.0.1:{srv.port}"
