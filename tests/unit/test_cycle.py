"""The ASGI HTTP cycle driven with a fake ResponseSink, inside asyncio.run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from squall.asgi.http import DONE, HELD, HIGH_WATER, IDLE, STREAMING, HTTPCycle
from squall.errors import ResponseError

pytestmark = pytest.mark.timeout(10)

START = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


class FakeSink:
    """Records every call the cycle makes on its connection."""

    def __init__(self) -> None:
        self.consumed_bytes = 0
        self.calls: list[tuple[Any, ...]] = []
        self.write_paused = False
        self.drained = 0

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes | None, more_body: bool
    ) -> None:
        assert isinstance(cycle, HTTPCycle)
        self.calls.append(("start", status, list(headers), body, more_body))

    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None:
        self.calls.append(("body", body, more_body))

    def send_continue(self, cycle: HTTPCycle) -> None:
        self.calls.append(("continue",))

    def response_complete(self, cycle: HTTPCycle) -> None:
        self.calls.append(("complete",))

    def cycle_failed(self, cycle: HTTPCycle, status: int) -> None:
        self.calls.append(("failed", status))

    def pause_reading(self) -> None:
        self.calls.append(("pause",))

    def resume_reading(self) -> None:
        self.calls.append(("resume",))

    def consumed(self, size: int) -> None:
        self.consumed_bytes += size

    async def drain(self) -> None:
        self.drained += 1
        self.write_paused = False


def make_cycle(expect_continue: bool = False) -> tuple[HTTPCycle, FakeSink]:
    sink = FakeSink()
    scope = {"type": "http", "method": "GET", "path": "/"}
    return HTTPCycle(scope, sink, expect_continue), sink


async def run_app(cycle: HTTPCycle, app: Callable[..., Awaitable[Any]]) -> None:
    await cycle.run(app, set())


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await asyncio.wait_for(coro, 5)

    return asyncio.run(main())


# -- response start is held ---------------------------------------------------------------------


def test_start_held_until_first_body() -> None:
    cycle, sink = make_cycle()

    async def main() -> None:
        await cycle.send(START)
        assert sink.calls == []
        assert cycle.state == HELD
        assert cycle.status == 200
        await cycle.send(body(b"hello"))

    run(main())
    assert sink.calls == [("start", 200, [(b"x-a", b"1")], b"hello", False), ("complete",)]
    assert cycle.state == DONE


def test_streaming_response() -> None:
    cycle, sink = make_cycle()

    async def main() -> None:
        await cycle.send(START)
        await cycle.send(body(b"a", more=True))
        assert cycle.state == STREAMING
        await cycle.send(body(b"b", more=True))
        await cycle.send(body())

    run(main())
    assert sink.calls == [
        ("start", 200, [(b"x-a", b"1")], b"a", True),
        ("body", b"b", True),
        ("body", b"", False),
        ("complete",),
    ]


def test_body_defaults() -> None:
    cycle, sink = make_cycle()

    async def main() -> None:
        await cycle.send({"type": "http.response.start", "status": 204})
        await cycle.send({"type": "http.response.body"})

    run(main())
    assert sink.calls == [("start", 204, [], b"", False), ("complete",)]


def test_drain_awaited_when_write_paused() -> None:
    cycle, sink = make_cycle()

    async def main() -> None:
        await cycle.send(START)
        sink.write_paused = True
        await cycle.send(body(b"a", more=True))
        assert sink.drained == 1
        await cycle.send(body(b"b", more=True))
        assert sink.drained == 1  # drain reset write_paused

    run(main())


# -- receive ---------------------------------------------------------------------------------


def test_receive_returns_buffered_body_then_disconnect_after_complete() -> None:
    cycle, _ = make_cycle()
    cycle.feed_body(b"hel")
    cycle.feed_body(b"lo")
    cycle.end_body()

    async def main() -> list[Any]:
        first = await cycle.receive()
        await cycle.send(START)
        await cycle.send(body(b"ok"))
        second = await cycle.receive()
        return [first, second]

    assert run(main()) == [
        {"type": "http.request", "body": b"hello", "more_body": False},
        {"type": "http.disconnect"},
    ]


def test_receive_empty_body() -> None:
    cycle, _ = make_cycle()
    cycle.end_body()
    assert run(cycle.receive()) == {"type": "http.request", "body": b"", "more_body": False}


def test_receive_streams_body_as_it_arrives() -> None:
    cycle, _ = make_cycle()

    async def main() -> list[Any]:
        got = []
        task = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        assert not task.done()
        cycle.feed_body(b"one")
        got.append(await task)
        task = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        cycle.feed_body(b"two")
        cycle.end_body()
        got.append(await task)
        return got

    assert run(main()) == [
        {"type": "http.request", "body": b"one", "more_body": True},
        {"type": "http.request", "body": b"two", "more_body": False},
    ]


def test_receive_blocks_until_disconnect() -> None:
    cycle, _ = make_cycle()
    cycle.end_body()

    async def main() -> Any:
        await cycle.receive()
        task = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0.01)
        assert not task.done()  # the response is not complete: nothing to say yet
        cycle.disconnect()
        return await task

    assert run(main()) == {"type": "http.disconnect"}


def test_waiting_receive_woken_when_response_completes() -> None:
    cycle, _ = make_cycle()
    cycle.end_body()

    async def main() -> Any:
        await cycle.receive()
        task = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0.01)
        await cycle.send(START)
        await cycle.send(body(b"done"))
        return await asyncio.wait_for(task, 1)

    assert run(main()) == {"type": "http.disconnect"}


def test_receive_after_disconnect_with_unread_body() -> None:
    cycle, _ = make_cycle()
    cycle.feed_body(b"partial")
    cycle.disconnect()

    async def main() -> list[Any]:
        return [await cycle.receive(), await cycle.receive()]

    first, second = run(main())
    assert first == {"type": "http.request", "body": b"partial", "more_body": True}
    assert second == {"type": "http.disconnect"}


def test_high_water_pauses_and_resumes_reading() -> None:
    cycle, sink = make_cycle()
    cycle.feed_body(b"x" * HIGH_WATER)
    assert sink.calls == []
    cycle.feed_body(b"y")
    assert sink.calls == [("pause",)]
    message = run(cycle.receive())
    assert len(message["body"]) == HIGH_WATER + 1
    assert sink.calls[-1] == ("resume",)


# -- 100-continue -------------------------------------------------------------------------------


def test_continue_sent_on_first_receive_only() -> None:
    cycle, sink = make_cycle(expect_continue=True)

    async def main() -> None:
        assert sink.calls == []
        task = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        assert sink.calls == [("continue",)]
        cycle.feed_body(b"a")
        await task
        cycle.feed_body(b"b")
        cycle.end_body()
        await cycle.receive()

    run(main())
    assert sink.calls.count(("continue",)) == 1


def test_no_continue_without_expect() -> None:
    cycle, sink = make_cycle(expect_continue=False)
    cycle.end_body()
    run(cycle.receive())
    assert ("continue",) not in sink.calls


def test_no_continue_after_response_started() -> None:
    cycle, sink = make_cycle(expect_continue=True)
    cycle.end_body()

    async def main() -> None:
        await cycle.send({"type": "http.response.start", "status": 413})
        await cycle.receive()

    run(main())
    assert ("continue",) not in sink.calls


def test_no_continue_after_disconnect() -> None:
    cycle, sink = make_cycle(expect_continue=True)
    cycle.disconnect()
    assert run(cycle.receive()) == {"type": "http.disconnect"}
    assert ("continue",) not in sink.calls


def test_no_continue_if_app_never_receives() -> None:
    cycle, sink = make_cycle(expect_continue=True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"no"))

    run(run_app(cycle, app))
    assert ("continue",) not in sink.calls


# -- send order errors ----------------------------------------------------------------------------


def send_sequence(*messages: dict[str, Any]) -> tuple[HTTPCycle, FakeSink]:
    cycle, sink = make_cycle()

    async def main() -> None:
        for message in messages:
            await cycle.send(message)

    run(main())
    return cycle, sink


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ((body(b"x"),), "Expected ASGI message 'http.response.start'"),
        ((START, START), "after response already started"),
        ((START, body(b"x", more=True), START), "after response already started"),
        ((START, body(b"x"), body(b"y")), "after response already completed"),
        ((START, body(b"x"), START), "after response already started"),
        (({"type": "websocket.send"},), "Unexpected ASGI message 'websocket.send'"),
        (({"type": "http.response.start", "status": "200"},), "Invalid HTTP status code"),
        (({"type": "http.response.start", "status": 200.0},), "Invalid HTTP status code"),
    ],
    ids=[
        "body-before-start",
        "start-twice",
        "start-while-streaming",
        "body-after-complete",
        "start-after-complete",
        "unknown-type",
        "status-str",
        "status-float",
    ],
)
def test_send_order_errors(messages: tuple[dict[str, Any], ...], match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        send_sequence(*messages)


def test_send_after_disconnect_ignored() -> None:
    cycle, sink = make_cycle()
    cycle.disconnect()

    async def main() -> None:
        await cycle.send(START)
        await cycle.send(body(b"ignored", more=True))
        await cycle.send(body(b"ignored"))

    run(main())
    assert sink.calls == []


def test_send_after_disconnect_mid_stream_ignored() -> None:
    cycle, sink = make_cycle()

    async def main() -> None:
        await cycle.send(START)
        await cycle.send(body(b"a", more=True))
        cycle.disconnect()
        await cycle.send(body(b"b", more=True))
        await cycle.send(body())

    run(main())
    assert sink.calls == [("start", 200, [(b"x-a", b"1")], b"a", True)]


# -- run(): failures ------------------------------------------------------------------------------


def test_exception_before_start_is_500(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert sink.calls == [("failed", 500)]
    errors = [r for r in caplog.records if r.name == "squall.error"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], ValueError)


def test_exception_after_start_before_body_is_500() -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        raise ValueError("boom")

    run(run_app(cycle, app))
    assert sink.calls == [("failed", 500)]


def test_exception_while_streaming_fails_cycle() -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"a", more=True))
        raise ValueError("boom")

    run(run_app(cycle, app))
    assert sink.calls[-1] == ("failed", 500)


def test_exception_after_completion_not_failed(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(START)
        await send(body(b"ok"))
        raise ValueError("late")

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert sink.calls == [("start", 200, [(b"x-a", b"1")], b"ok", False), ("complete",)]
    assert any(r.exc_info and isinstance(r.exc_info[1], ValueError) for r in caplog.records), (
        "the exception is still logged"
    )


def test_response_error_logged_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise ResponseError("Invalid HTTP header name: b'bad name'")

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert sink.calls == [("failed", 500)]
    record = next(r for r in caplog.records if r.name == "squall.error")
    assert "bad name" in record.getMessage()
    assert record.exc_info is None


def test_returned_value_logged(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> Any:
        await send(START)
        await send(body(b"ok"))
        return "surprise"

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    messages = [r.getMessage() for r in caplog.records if r.name == "squall.error"]
    assert messages == ["ASGI callable should return None, but returned 'surprise'."]
    assert ("failed", 500) not in sink.calls


def test_returned_value_without_response_is_500(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> Any:
        return 42

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert sink.calls == [("failed", 500)]
    assert "returned '42'" in caplog.text


@pytest.mark.parametrize(
    ("messages", "log"),
    [
        ((), "ASGI callable returned without starting response."),
        ((START,), "ASGI callable returned without completing response."),
        ((START, body(b"a", more=True)), "ASGI callable returned without completing response."),
    ],
    ids=["nothing", "start-only", "streaming"],
)
def test_incomplete_response_is_500(
    caplog: pytest.LogCaptureFixture, messages: tuple[dict[str, Any], ...], log: str
) -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert sink.calls[-1] == ("failed", 500)
    assert log in caplog.text


def test_complete_response_no_failure_no_log(caplog: pytest.LogCaptureFixture) -> None:
    cycle, sink = make_cycle()
    cycle.end_body()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope is cycle.scope
        await receive()
        await send(START)
        await send(body(b"fine"))

    with caplog.at_level(logging.DEBUG, logger="squall.error"):
        run(run_app(cycle, app))
    assert ("failed", 500) not in sink.calls
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_disconnected_client_is_not_an_app_error(caplog: pytest.LogCaptureFixture) -> None:
    cycle, _ = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        cycle.disconnect()  # the client goes away while the app works
        await send(START)
        await send(body(b"too late"))

    with caplog.at_level(logging.ERROR, logger="squall.error"):
        run(run_app(cycle, app))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_cancelled_app_is_503_and_not_reraised() -> None:
    cycle, sink = make_cycle()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    run(run_app(cycle, app))
    assert sink.calls == [("failed", 503)]


def test_base_exception_is_reraised_after_failing_cycle() -> None:
    cycle, sink = make_cycle()

    class Stop(BaseException):
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise Stop

    with pytest.raises(Stop):
        run(run_app(cycle, app))
    assert sink.calls == [("failed", 500)]


def test_states_progress() -> None:
    cycle, _ = make_cycle()
    states = [cycle.state]

    async def main() -> None:
        await cycle.send(START)
        states.append(cycle.state)
        await cycle.send(body(b"a", more=True))
        states.append(cycle.state)
        await cycle.send(body())
        states.append(cycle.state)

    run(main())
    assert states == [IDLE, HELD, STREAMING, DONE]
