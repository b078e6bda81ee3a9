"""Building ASGI HTTP scopes from parsed request heads."""

from __future__ import annotations

import pytest

from squall.asgi.scope import ConnInfo, decode_path, format_address, http_scope, split_target
from squall.protocols.http1.head import ParseError, RequestHead

# -- split_target ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"/", b"/", b""),
        (b"/a/b", b"/a/b", b""),
        (b"/a?b=1&c=2", b"/a", b"b=1&c=2"),
        (b"/a?", b"/a", b""),
        (b"/a?b?c", b"/a", b"b?c"),
        (b"/?q", b"/", b"q"),
        (b"//double//slash", b"//double//slash", b""),
        (b"/%2F%20?x=%20", b"/%2F%20", b"x=%20"),
    ],
)
def test_origin_form(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        (b"http://example.com/a/b?c=1", b"/a/b", b"c=1"),
        (b"https://example.com:8443/x", b"/x", b""),
        (b"http://example.com", b"/", b""),
        (b"http://example.com?q=1", b"/", b"q=1"),
        (b"HTTP://EXAMPLE.COM/Up", b"/Up", b""),
    ],
)
def test_absolute_form(target: bytes, path: bytes, query: bytes) -> None:
    assert split_target(target) == (path, query)


def test_asterisk_form() -> None:
    assert split_target(b"*") == (b"*", b"")


@pytest.mark.parametrize(
    "target",
    [b"", b"example.com:443", b"a/b", b"ftp://example.com/", b"**", b"?q", b"javascript:x"],
)
def test_bad_targets_are_400(target: bytes) -> None:
    with pytest.raises(ParseError) as info:
        split_target(target)
    assert info.value.status == 400


# -- decode_path ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/plain", "/plain"),
        (b"/a%20b", "/a b"),
        (b"/caf%C3%A9", "/café"),
        (b"/a%2Fb", "/a/b"),
        (b"/100%", "/100%"),
        (b"/%zz", "/%zz"),
        (b"/%25", "/%"),
        (b"/+", "/+"),
    ],
)
def test_decode_path(raw: bytes, path: str) -> None:
    assert decode_path(raw) == path


@pytest.mark.parametrize("raw", ["/café".encode(), b"/\xff", b"/\x80abc"])
def test_non_ascii_path_is_400(raw: bytes) -> None:
    with pytest.raises(ParseError) as info:
        decode_path(raw)
    assert info.value.status == 400


# -- http_scope -------------------------------------------------------------------------------


def make_head(target: bytes, method: str = "GET", version: str = "1.1") -> RequestHead:
    head = RequestHead()
    head.method = method
    head.target = target
    head.http_version = version
    head.headers = [(b"host", b"example.com"), (b"x-a", b"1")]
    return head


INFO = ConnInfo(("10.0.0.1", 50000), ("127.0.0.1", 8000), "http", trusted=False)


def test_http_scope_keys_and_values() -> None:
    head = make_head(b"/p%20q?x=1&y=2", "POST")
    state = {"db": "conn"}
    scope = http_scope(head, INFO, "", state)
    assert scope == {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/p q",
        "raw_path": b"/p%20q",
        "query_string": b"x=1&y=2",
        "headers": [(b"host", b"example.com"), (b"x-a", b"1")],
        "state": {"db": "conn"},
        "extensions": {
            "http.response.trailers": {},
            "http.response.early_hint": {},
            "http.response.pathsend": {},
            "http.response.zerocopysend": {},
        },
    }


def test_http_scope_types() -> None:
    scope = http_scope(make_head(b"/"), INFO, "", {})
    assert isinstance(scope["path"], str)
    assert isinstance(scope["raw_path"], bytes)
    assert isinstance(scope["query_string"], bytes)
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in scope["headers"])


def test_http_scope_state_is_a_shallow_copy() -> None:
    state = {"k": "v"}
    one = http_scope(make_head(b"/"), INFO, "", state)
    two = http_scope(make_head(b"/"), INFO, "", state)
    assert one["state"] == state
    assert one["state"] is not state
    one["state"]["new"] = 1
    assert "new" not in state
    assert "new" not in two["state"]


def test_http_scope_root_path_prefixes_path_and_raw_path() -> None:
    scope = http_scope(make_head(b"/items/a%20b?x"), INFO, "/api", {})
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/a b"
    assert scope["raw_path"] == b"/api/items/a%20b"
    assert scope["query_string"] == b"x"


def test_http_scope_absolute_form() -> None:
    scope = http_scope(make_head(b"http://example.com/a?b"), INFO, "", {})
    assert scope["path"] == "/a"
    assert scope["raw_path"] == b"/a"
    assert scope["query_string"] == b"b"


def test_http_scope_http10_and_https() -> None:
    info = ConnInfo(None, ("/tmp/squall.sock", None), "https", trusted=False)
    scope = http_scope(make_head(b"/", version="1.0"), info, "", {})
    assert scope["http_version"] == "1.0"
    assert scope["scheme"] == "https"
    assert scope["client"] is None
    assert scope["server"] == ("/tmp/squall.sock", None)


def test_http_scope_bad_target_is_400() -> None:
    with pytest.raises(ParseError) as info:
        http_scope(make_head(b"nope"), INFO, "", {})
    assert info.value.status == 400


# -- ConnInfo / format_address --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "label"),
    [
        (("127.0.0.1", 8000), "127.0.0.1:8000"),
        (("::1", 443), "[::1]:443"),
        (None, "-"),
    ],
)
def test_format_address(addr: tuple[str, int] | None, label: str) -> None:
    assert format_address(addr) == label
    assert ConnInfo(addr, None, "http", False).client_label == label
