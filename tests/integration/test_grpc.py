"""gRPC interop: the real ``grpcio`` client against Squall over HTTP/2.

The server is ``python -m squall`` running :mod:`tests.apps.grpc_app`, a gRPC
service written as a plain ASGI app (messages framed by hand, the status in
HTTP trailers). The client reaches it over cleartext HTTP/2 with prior
knowledge (``grpc.insecure_channel``; with both HTTP/1 parsers, which see the
preface first) and over TLS with ALPN ``h2`` (``grpc.secure_channel`` trusting
the test CA). Payloads are raw bytes: no protoc, identity serializers.

Checked: the four call shapes (unary, server streaming, client streaming,
interleaved bidi), an error status and message from trailers (and gRPC's
Trailers-Only form), a deadline and cancellations (each seen by the app as
``http.disconnect``, the channel still serving the next call), and tens of MiB
each way under flow control with exact byte counts. grpcio raises
SETTINGS_INITIAL_WINDOW_SIZE (from its bandwidth probe) a few MiB into a
connection's first stream, so the downloads use fresh channels, and one test's
reader pauses (the stream then waits on a spent window when the SETTINGS come):
a server that sends DATA against the new window before its SETTINGS ACK fails
those streams ("INTERNAL: ... overflows local window").
"""

from __future__ import annotations

import hashlib
import os
import queue
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.conftest import ROOT
from tests.integration.helpers import wait_until
from tests.integration.http2_client import write_certs
from tests.integration.squall_proc import Proc

KiB = 1 << 10
MiB = 1 << 20
APP = "tests.apps.grpc_app:app"
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]  # never through a proxy from the env
BIG_TOTAL = 32 * MiB  # each large transfer
BIG_MESSAGE = 64 * KiB
BIG_CHANNELS = 3  # the large transfers: each on this many fresh channels
PAUSING_DOWNLOADS = 16  # fresh channels


@dataclass
class Target:
    """One running Squall and how a grpcio channel reaches it."""

    name: str
    proc: Proc
    port: int
    ca: bytes | None  # the CA's PEM for TLS; None for cleartext

    @property
    def marks(self) -> Path:
        return self.proc.cwd

    def channel(self) -> grpc.Channel:
        address = f"127.0.0.1:{self.port}"
        if self.ca is None:
            channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.ca)
            channel = grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
        return channel  # it connects with its first call

    def mark(self, name: str, tag: str) -> Path:
        return self.marks / f"{name}-{tag}"


SERVERS = {  # name: the options of its Squall
    "h2c": ["--http", "httptools"],
    "h2c-h11": ["--http", "h11"],
    "tls": ["--ssl-certfile", "{server}"],
}


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    """All the servers, started together (before any grpc call, so before grpc's threads)."""
    base = tmp_path_factory.mktemp("grpc")
    certs = write_certs(base)
    procs: dict[str, Proc] = {}
    try:
        for name, options in SERVERS.items():
            folder = base / name  # the app's records go here
            folder.mkdir()
            args = [APP, "--app-dir", str(ROOT), "--host", "127.0.0.1", "--port", "0",
                    "--log-level", "info", "--no-access-log"]  # fmt: skip
            procs[name] = Proc(args + [o.format(**certs) for o in options], folder)
        started = {}
        for name, proc in procs.items():
            port = proc.wait_for(r"running on https?://127\.0\.0\.1:(\d+)", timeout=15)[0]
            ca = Path(certs["ca"]).read_bytes() if "--ssl-certfile" in SERVERS[name] else None
            started[name] = Target(name, proc, int(port), ca)
        yield started
    finally:
        for proc in procs.values():
            proc.kill_all()


@pytest.fixture
def target(request: pytest.FixtureRequest, targets: dict[str, Target]) -> Iterator[Target]:
    """The server named by the test's parameter; its log must stay free of errors."""
    chosen = targets[str(request.param)]
    seen = len(chosen.proc.lines)
    yield chosen
    new = "".join(chosen.proc.lines[seen:])
    assert chosen.proc.proc.poll() is None, f"the server exited:\n{chosen.proc.output}"
    assert "Traceback" not in new and "ERROR" not in new, f"server log:\n{new}"


every_transport = pytest.mark.parametrize("target", ["h2c", "h2c-h11", "tls"], indirect=True)
h2c_and_tls = pytest.mark.parametrize("target", ["h2c", "tls"], indirect=True)


def new_tag() -> str:
    return uuid.uuid4().hex


def stream_request(count: int, size: int) -> bytes:
    return struct.pack(">II", count, size)


def expected_message(index: int, size: int) -> bytes:
    return bytes([index % 256]) * size


def client_stream_answer(payloads: list[bytes]) -> bytes:
    digest = hashlib.sha256(b"".join(payloads)).digest()
    return struct.pack(">QQ", len(payloads), sum(map(len, payloads))) + digest


# -- the four call shapes ----------------------------------------------------------------


@every_transport
def test_unary_echo(target: Target) -> None:
    payloads = [b"", b"hello", os.urandom(100 * KiB), os.urandom(3 * MiB)]
    with target.channel() as channel:
        echo = channel.unary_unary("/test.Echo/Unary")
        for payload in payloads:
            response, call = echo.with_call(payload, timeout=10)
            assert response == payload
            assert call.code() == grpc.StatusCode.OK


@every_transport
def test_server_stream(target: Target) -> None:
    count, size = 300, 1000
    with target.channel() as channel:
        stream = channel.unary_stream("/test.Echo/ServerStream")
        call = stream(stream_request(count, size), timeout=10)
        got = list(call)
        assert call.code() == grpc.StatusCode.OK
    assert len(got) == count
    for index, message in enumerate(got):
        assert message == expected_message(index, size), f"message {index}"


@every_transport
def test_client_stream(target: Target) -> None:
    payloads = [os.urandom(size) for size in (0, 1, 5, 16 * KiB, 70 * KiB, 3, 200 * KiB)] * 5
    with target.channel() as channel:
        upload = channel.stream_unary("/test.Echo/ClientStream")
        response, call = upload.with_call(iter(payloads), timeout=10)
        assert call.code() == grpc.StatusCode.OK
    assert response == client_stream_answer(payloads)


@every_transport
def test_bidi_interleaved(target: Target) -> None:
    """Each request goes only after the previous echo came back: no buffering either way."""
    outgoing: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (item := outgoing.get(timeout=10)) is not None:
            yield item

    sent = [f"message {i} ".encode() * (i + 1) for i in range(50)] + [os.urandom(256 * KiB)]
    with target.channel() as channel:
        bidi = channel.stream_stream("/test.Echo/Bidi")
        call = bidi(requests(), timeout=15)
        for payload in sent:
            outgoing.put(payload)
            assert next(call) == payload
        outgoing.put(None)
        assert list(call) == []
        assert call.code() == grpc.StatusCode.OK


# -- status ------------------------------------------------------------------------------


@every_transport
def test_error_status_and_message_from_trailers(target: Target) -> None:
    with target.channel() as channel:
        fail = channel.unary_unary("/test.Echo/Fail")
        with pytest.raises(grpc.RpcError) as caught:
            fail(b"x", timeout=10)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.details() == "bad argument: caf\u00e9 50%"  # percent-decoded
        # the channel serves on after an error status
        assert channel.unary_unary("/test.Echo/Unary")(b"after", timeout=10) == b"after"


@every_transport
def test_unknown_method_is_unimplemented(target: Target) -> None:
    with target.channel() as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/test.Echo/Nope")(b"x", timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert caught.value.details() == "unknown method"


@h2c_and_tls
def test_trailers_only_error(target: Target) -> None:
    """gRPC's Trailers-Only: the status in the response headers of a body-less response.

    The app sends ``http.response.start`` with ``grpc-status`` in its headers and
    an empty final body; grpcio reads the status only from a HEADERS frame that
    ends the stream."""
    with target.channel() as channel:
        fail = channel.unary_unary("/test.Echo/FailTrailersOnly")
        with pytest.raises(grpc.RpcError) as caught:
            fail(b"x", timeout=10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "trailers only",
    )


# -- deadlines and cancellation ----------------------------------------------------------


@h2c_and_tls
def test_deadline_exceeded_and_the_app_sees_the_disconnect(target: Target) -> None:
    tag = new_tag()
    with target.channel() as channel:
        echo = channel.unary_unary("/test.Echo/Unary")
        assert echo(b"connect", timeout=10) == b"connect"  # the deadline is all the app's
        slow = channel.unary_unary("/test.Echo/Slow")
        began = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            slow(b"", timeout=1, metadata=[("x-test-tag", tag)])
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - began < 5  # not the app's 20 s
        assert target.mark("started", tag).exists()
        wait_until(target.mark("disconnect", tag).exists, 5, "the app to see http.disconnect")
        assert echo(b"next", timeout=10) == b"next"


@h2c_and_tls
def test_cancelled_server_stream(target: Target) -> None:
    """Cancelled while the app is held by flow control: the app learns of it and
    stops; the same channel (connection) serves the next calls."""
    tag = new_tag()
    count, size = 1 << 20, 16 * KiB  # 16 GiB if it were never cancelled
    with target.channel() as channel:
        stream = channel.unary_stream("/test.Echo/ServerStream")
        call = stream(stream_request(count, size), timeout=30, metadata=[("x-test-tag", tag)])
        for index in range(5):
            assert next(call) == expected_message(index, size)
        assert call.cancel()
        with pytest.raises(grpc.RpcError) as caught:
            for _ in call:
                pass
        assert caught.value.code() == grpc.StatusCode.CANCELLED
        disconnect = target.mark("disconnect", tag)
        wait_until(disconnect.exists, 5, "the app to see http.disconnect")
        assert 5 <= int(disconnect.read_text()) < count
        # the connection is still good: a unary call and a whole stream
        assert channel.unary_unary("/test.Echo/Unary")(b"next", timeout=10) == b"next"
        after = list(stream(stream_request(20, size), timeout=10))
        assert after == [expected_message(i, size) for i in range(20)]


@h2c_and_tls
def test_cancelled_client_stream(target: Target) -> None:
    tag = new_tag()
    outgoing: queue.Queue[bytes | None] = queue.Queue()

    def requests() -> Iterator[bytes]:
        while (item := outgoing.get(timeout=10)) is not None:
            yield item

    with target.channel() as channel:
        upload = channel.stream_unary("/test.Echo/ClientStream")
        future = upload.future(requests(), timeout=30, metadata=[("x-test-tag", tag)])
        for _ in range(3):
            outgoing.put(b"x" * 1000)
        wait_until(target.mark("started", tag).exists, 5, "the call to reach the app")
        assert future.cancel()
        outgoing.put(None)
        assert future.cancelled()
        wait_until(target.mark("disconnect", tag).exists, 5, "the app to see http.disconnect")
        payloads = [b"a" * 10, b"b" * 20]
        assert upload(iter(payloads), timeout=10) == client_stream_answer(payloads)


# -- large transfers under flow control --------------------------------------------------


def download(channel: grpc.Channel, total: int, size: int, pause_every: int = 0) -> int:
    """One server stream of ``total`` bytes in messages of ``size``; the bytes received.

    With ``pause_every``, the reader stops for 20 ms after that many bytes, each
    time (the server is then held by flow control, its window spent)."""
    count = total // size
    received = 0
    stream = channel.unary_stream("/test.Echo/ServerStream")
    for index, message in enumerate(stream(stream_request(count, size), timeout=20)):
        if message != expected_message(index, size):
            raise AssertionError(f"message {index}: {len(message)} bytes, wrong content")
        received += len(message)
        if pause_every and received % pause_every == 0:
            time.sleep(0.02)
    return received


def downloads(target: Target, attempts: int, per_channel: int, **kw: int) -> list[str]:
    """``attempts`` fresh channels, ``per_channel`` downloads on each; what went wrong."""
    failures: list[str] = []
    for attempt in range(attempts):
        with target.channel() as channel:
            for call in range(per_channel):
                try:
                    received = download(channel, **kw)
                except grpc.RpcError as exc:
                    failures.append(f"#{attempt}.{call}: {exc.code()} {exc.details()}")
                    break
                if received != kw["total"]:
                    failures.append(f"#{attempt}.{call}: {received} bytes of {kw['total']}")
    return failures


@h2c_and_tls
def test_large_downloads(target: Target) -> None:
    """32 MiB in 64 KiB messages, twice on each of a few connections: every byte arrives,
    while grpcio raises its windows (SETTINGS, WINDOW_UPDATE) as the data flows."""
    failures = downloads(target, BIG_CHANNELS, 2, total=BIG_TOTAL, size=BIG_MESSAGE)
    assert not failures, f"{len(failures)} of {2 * BIG_CHANNELS} downloads failed:\n" + (
        "\n".join(failures)
    )


@h2c_and_tls
def test_downloads_with_a_pausing_reader(target: Target) -> None:
    """8 MiB on a fresh connection each, the reader pausing every 1 MiB: grpcio raises
    SETTINGS_INITIAL_WINDOW_SIZE (4 MiB to 16 MiB) while the stream waits on a spent
    window. DATA the new window allows may only follow the SETTINGS ACK; before it,
    grpcio still holds the old window and fails the stream ("INTERNAL: ... overflows
    local window")."""
    failures = downloads(
        target, PAUSING_DOWNLOADS, 1, total=8 * MiB, size=BIG_MESSAGE, pause_every=MiB
    )
    assert not failures, f"{len(failures)} of {PAUSING_DOWNLOADS} downloads failed:\n" + (
        "\n".join(failures)
    )


@h2c_and_tls
def test_large_uploads(target: Target) -> None:
    block = os.urandom(BIG_MESSAGE)
    count = BIG_TOTAL // BIG_MESSAGE
    # each message differs (its index up front), so a lost or repeated one shows
    payloads = [struct.pack(">I", i) + block[4:] for i in range(count)]
    expected = client_stream_answer(payloads)
    for _ in range(BIG_CHANNELS):
        with target.channel() as channel:
            upload = channel.stream_unary("/test.Echo/ClientStream")
            response = upload(iter(payloads), timeout=20)
        assert struct.unpack(">QQ", response[:16]) == (count, BIG_TOTAL)
        assert response == expected
