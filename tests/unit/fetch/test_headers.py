"""previewer.fetch.headers: what reaches the origin, and when a preview may be shared."""

from __future__ import annotations

import pytest

from previewer.fetch.headers import (
    ACCEPT_FALLBACK,
    DECODABLE_TYPES,
    USER_AGENT,
    VIA,
    credentials,
    forwarded_headers,
    is_shareable,
    narrow_accept,
    without_credentials,
)

Headers = list[tuple[str, str]]

END_TO_END: Headers = [
    ("Accept", "image/avif,image/webp,*/*"),
    ("Accept-Language", "fr-CH, fr;q=0.9"),
    ("User-Agent", "Mozilla/5.0 (test)"),
    ("Authorization", "Bearer abc"),
    ("Cookie", "a=1; b=2"),
    ("Referer", "https://example.org/page"),
    ("X-Custom", "one"),
    ("Cache-Control", "no-cache"),
    ("Pragma", "no-cache"),
    ("DNT", "1"),
]


def names(headers: Headers) -> list[str]:
    return [name.lower() for name, _ in headers]


def values(headers: Headers, name: str) -> list[str]:
    return [value for n, value in headers if n.lower() == name.lower()]


def without_added(headers: Headers) -> Headers:
    """The forwarded headers minus the ones previewer adds or rewrites itself."""
    added = {"accept-encoding", "via", "x-forwarded-for"}
    return [(n, v) for n, v in headers if n.lower() not in added]


# --- forwarding -------------------------------------------------------------------


def test_end_to_end_headers_are_kept_with_value_and_order() -> None:
    out = forwarded_headers(END_TO_END, "203.0.113.7")
    assert without_added(out) == END_TO_END


def test_repeated_headers_are_kept_in_order() -> None:
    client = [
        ("X-Tag", "first"),
        ("Accept", "image/png"),
        ("X-Tag", "second"),
        ("x-tag", "third"),
        ("User-Agent", "ua"),
    ]
    out = forwarded_headers(client, None)
    assert without_added(out) == client


def test_header_name_case_is_kept() -> None:
    out = forwarded_headers([("x-LoWeR", "v"), ("User-Agent", "ua")], None)
    assert ("x-LoWeR", "v") in out


@pytest.mark.parametrize(
    "name",
    [
        "Connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "connection",
        "KEEP-ALIVE",
        "te",
    ],
)
def test_hop_by_hop_headers_are_dropped(name: str) -> None:
    out = forwarded_headers([("Accept", "*/*"), (name, "something"), ("X-After", "1")], None)
    assert name.lower() not in names(out)
    assert ("Accept", "*/*") in out
    assert ("X-After", "1") in out


def test_every_header_named_in_connection_is_dropped() -> None:
    client = [
        ("Connection", "keep-alive, X-Secret-Hop"),
        ("Connection", "X-Other ,  x-third"),
        ("X-Secret-Hop", "1"),
        ("x-other", "2"),
        ("X-Third", "3"),
        ("X-Kept", "4"),
        ("User-Agent", "ua"),
    ]
    out = forwarded_headers(client, None)
    assert without_added(out) == [("X-Kept", "4"), ("User-Agent", "ua")]


def test_connection_may_name_an_end_to_end_header() -> None:
    client = [("Connection", "Cookie"), ("Cookie", "a=1"), ("User-Agent", "ua")]
    assert "cookie" not in names(forwarded_headers(client, None))


@pytest.mark.parametrize(
    "name",
    [
        "Host",
        "Content-Length",
        "If-None-Match",
        "If-Modified-Since",
        "If-Match",
        "If-Unmodified-Since",
        "If-Range",
        "Range",
        "host",
        "RANGE",
    ],
)
def test_host_length_conditional_and_range_headers_are_dropped(name: str) -> None:
    out = forwarded_headers([(name, "value"), ("User-Agent", "ua")], None)
    assert name.lower() not in names(out)
    assert ("User-Agent", "ua") in out


@pytest.mark.parametrize("client_value", [None, "gzip, deflate, br", "*", "identity"])
def test_accept_encoding_is_replaced_by_identity(client_value: str | None) -> None:
    client = [("Accept", "*/*")]
    if client_value is not None:
        client.append(("Accept-Encoding", client_value))
    out = forwarded_headers(client, None)
    assert values(out, "accept-encoding") == ["identity"]


def test_x_forwarded_for_gets_the_client_address() -> None:
    out = forwarded_headers([("Accept", "*/*")], "203.0.113.7")
    assert values(out, "x-forwarded-for") == ["203.0.113.7"]


def test_x_forwarded_for_is_appended_to_an_existing_value() -> None:
    out = forwarded_headers([("X-Forwarded-For", "198.51.100.1, 10.0.0.2")], "203.0.113.7")
    assert values(out, "x-forwarded-for") == ["198.51.100.1, 10.0.0.2, 203.0.113.7"]


def test_repeated_x_forwarded_for_are_joined_in_order() -> None:
    client = [("X-Forwarded-For", "198.51.100.1"), ("x-forwarded-for", "10.0.0.2")]
    out = forwarded_headers(client, "203.0.113.7")
    assert values(out, "x-forwarded-for") == ["198.51.100.1, 10.0.0.2, 203.0.113.7"]


def test_x_forwarded_for_without_a_client_address_is_passed_through() -> None:
    out = forwarded_headers([("X-Forwarded-For", "198.51.100.1")], None)
    assert values(out, "x-forwarded-for") == ["198.51.100.1"]
    assert "x-forwarded-for" not in names(forwarded_headers([("Accept", "*/*")], None))


def test_via_gets_our_hop() -> None:
    out = forwarded_headers([("Accept", "*/*")], None)
    assert values(out, "via") == [VIA]


def test_via_is_appended_to_an_existing_value() -> None:
    client = [("Via", "1.0 fred"), ("via", "1.1 p.example.net")]
    out = forwarded_headers(client, None)
    assert values(out, "via") == [f"1.0 fred, 1.1 p.example.net, {VIA}"]


def test_user_agent_default_only_without_one_from_the_client() -> None:
    without = forwarded_headers([("Accept", "*/*")], None)
    assert values(without, "user-agent") == [USER_AGENT]
    with_one = forwarded_headers([("user-agent", "curl/8")], None)
    assert values(with_one, "user-agent") == ["curl/8"]


def test_user_agent_named_in_connection_is_replaced_by_the_default() -> None:
    out = forwarded_headers([("Connection", "User-Agent"), ("User-Agent", "curl/8")], None)
    assert values(out, "user-agent") == [USER_AGENT]


def test_empty_request() -> None:
    out = forwarded_headers([], "203.0.113.7")
    assert sorted(names(out)) == ["accept-encoding", "user-agent", "via", "x-forwarded-for"]


def test_client_headers_may_be_any_iterable() -> None:
    out = forwarded_headers(iter([("Connection", "X-A"), ("X-A", "1"), ("X-B", "2")]), None)
    assert "x-a" not in names(out)
    assert ("X-B", "2") in out


# --- the operator's drop set ------------------------------------------------------


def test_drop_set_removes_named_headers() -> None:
    out = forwarded_headers(END_TO_END, None, frozenset({"cookie", "authorization"}))
    assert "cookie" not in names(out)
    assert "authorization" not in names(out)
    kept = [h for h in END_TO_END if h[0].lower() not in ("cookie", "authorization")]
    assert without_added(out) == kept


def test_drop_set_can_remove_headers_previewer_would_add() -> None:
    drop = frozenset({"user-agent", "x-forwarded-for", "via"})
    client = [("User-Agent", "ua"), ("X-Forwarded-For", "1.2.3.4"), ("Via", "1.0 a"), ("A", "1")]
    out = forwarded_headers(client, "203.0.113.7", drop)
    assert names(out) == ["a", "accept-encoding"]


def test_drop_set_only_narrows() -> None:
    client = [*END_TO_END, ("Connection", "X-Hop"), ("X-Hop", "1"), ("Host", "h")]
    full = forwarded_headers(client, "203.0.113.7")
    narrowed = forwarded_headers(client, "203.0.113.7", frozenset({"x-custom", "referer"}))
    assert set(narrowed) <= set(full)
    assert [h for h in full if h[0].lower() not in ("x-custom", "referer")] == narrowed


# --- sharing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        [],
        [("Cache-Control", "public, max-age=60")],
        [("Cache-Control", "max-age=0")],
        [("Content-Type", "image/jpeg"), ("ETag", '"x"')],
        [("Cache-Control", "no-cache")],
    ],
)
def test_plain_responses_are_shareable(response: Headers) -> None:
    assert is_shareable([("Accept", "*/*")], response) is True


@pytest.mark.parametrize(
    "response",
    [
        [("Cache-Control", "no-store")],
        [("Cache-Control", "private")],
        [("Cache-Control", "max-age=60, private")],
        [("Cache-Control", 'private="Set-Cookie"')],
        [("Cache-Control", "public"), ("Cache-Control", "no-store")],
        [("cache-control", "NO-STORE")],
        [("CACHE-CONTROL", "Private")],
        [("Cache-Control", " max-age=10 ,no-store ")],
        [("Set-Cookie", "session=1")],
        [("set-cookie", "session=1"), ("Cache-Control", "public")],
    ],
)
def test_private_responses_are_not_shareable(response: Headers) -> None:
    assert is_shareable([], response) is False


CREDENTIALED_CASES = [
    ([], False),
    ([("Cache-Control", "max-age=60")], False),
    ([("Cache-Control", "no-cache")], False),
    ([("Cache-Control", "public")], True),
    ([("Cache-Control", "PUBLIC, max-age=60")], True),
    ([("Cache-Control", "s-maxage=60")], True),
    ([("Cache-Control", "S-MaxAge=60")], True),
    ([("Cache-Control", "max-age=60"), ("Cache-Control", "public")], True),
    ([("Cache-Control", "public, no-store")], False),
    ([("Cache-Control", "public, private")], False),
    ([("Cache-Control", "public"), ("Set-Cookie", "a=1")], False),
]


@pytest.mark.parametrize("credential", [("Authorization", "Bearer x"), ("authorization", "x")])
@pytest.mark.parametrize("cookies_private", [False, True])
@pytest.mark.parametrize(("response", "expected"), CREDENTIALED_CASES)
def test_authorization_needs_public_or_s_maxage(
    credential: tuple[str, str], cookies_private: bool, response: Headers, expected: bool
) -> None:
    request = [("Accept", "*/*"), credential]
    assert is_shareable(request, response, cookies_private=cookies_private) is expected


@pytest.mark.parametrize("cookie", [("Cookie", "a=1"), ("cookie", "a=1")])
@pytest.mark.parametrize(("response", "expected"), CREDENTIALED_CASES)
def test_cookies_need_public_or_s_maxage_only_when_private(
    cookie: tuple[str, str], response: Headers, expected: bool
) -> None:
    request = [("Accept", "*/*"), cookie]
    assert is_shareable(request, response, cookies_private=True) is expected
    # RFC 9111 restricts only Authorization: the origin's answer alone decides
    assert is_shareable(request, response) is is_shareable([("Accept", "*/*")], response)


@pytest.mark.parametrize(
    "vary", ["Cookie", "*", "User-Agent", "Accept, Cookie", "accept-encoding,  ORIGIN"]
)
@pytest.mark.parametrize("request_headers", [[], [("Cookie", "a=1")]])
def test_vary_on_other_request_headers_is_not_shareable(
    vary: str, request_headers: Headers
) -> None:
    response = [("Cache-Control", "public, max-age=60"), ("Vary", vary)]
    assert is_shareable(request_headers, response) is False
    assert is_shareable(request_headers, response, cookies_private=True) is False


@pytest.mark.parametrize(
    "vary", [[("Vary", "Accept")], [("Vary", "Accept-Encoding, accept")], [("vary", "")]]
)
def test_vary_on_accept_and_accept_encoding_is_shareable(vary: Headers) -> None:
    assert is_shareable([("Cookie", "a=1")], [("Cache-Control", "max-age=60"), *vary]) is True


def test_repeated_vary_headers_are_all_read() -> None:
    response = [("Vary", "Accept"), ("Vary", "Cookie")]
    assert is_shareable([], response) is False


def test_public_like_names_are_not_public() -> None:
    request = [("Authorization", "Bearer x")]
    assert is_shareable(request, [("Cache-Control", "publicity, s-maxage-ish=1")]) is False
    assert is_shareable(request, [("X-Cache-Control", "public")]) is False


# --- credentials -------------------------------------------------------------------


def test_credentials_and_the_rest_split_a_request() -> None:
    request = [
        ("Accept", "*/*"),
        ("cookie", "a=1"),
        ("X-Token", "t"),
        ("AUTHORIZATION", "Basic x"),
        ("Cookie", "b=2"),
    ]
    assert credentials(request) == [
        ("cookie", "a=1"),
        ("AUTHORIZATION", "Basic x"),
        ("Cookie", "b=2"),
    ]
    assert without_credentials(request) == [("Accept", "*/*"), ("X-Token", "t")]
    assert credentials([("Proxy-Authorization", "x"), ("Set-Cookie", "y")]) == []


# --- Accept narrowing --------------------------------------------------------------

CHROMIUM = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
CHROMIUM_JXL = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)


@pytest.mark.parametrize(
    ("client", "narrowed"),
    [
        (CHROMIUM, "image/avif,image/webp,image/*,*/*;q=0.8"),
        (CHROMIUM_JXL, "image/avif,image/webp,image/*,*/*;q=0.8"),
        (FIREFOX, "image/avif,image/webp,image/png,image/*;q=0.8,*/*;q=0.5"),
        (SAFARI, "image/webp,image/avif,image/png,image/*;q=0.8,*/*;q=0.5"),
        ("*/*", "*/*"),
        ("image/jpeg", "image/jpeg"),
        # a navigation's Accept, as when a preview URL is opened directly
        (
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
            "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
            "image/avif,image/webp,*/*;q=0.8",
        ),
        # case, spaces and parameters are the client's
        (" Image/WebP ; q=0.9 , IMAGE/JXL, image/png;q=0", "Image/WebP ; q=0.9,image/png;q=0"),
        # a quoted parameter may hold a comma
        ('image/png;note="a,b";q=0.5, image/jxl', 'image/png;note="a,b";q=0.5'),
        # nothing left: exactly what previewer decodes
        ("image/jxl", ACCEPT_FALLBACK),
        ("text/html, application/json", ACCEPT_FALLBACK),
        ("", ACCEPT_FALLBACK),
        ("garbage-without-slash", ACCEPT_FALLBACK),
    ],
)
def test_accept_is_narrowed_to_decodable_types(client: str, narrowed: str) -> None:
    assert narrow_accept([client]) == narrowed
    out = forwarded_headers([("Accept", client), ("User-Agent", "ua")], None)
    assert values(out, "accept") == [narrowed]


def test_the_fallback_names_every_decodable_type() -> None:
    assert ACCEPT_FALLBACK.split(",") == list(DECODABLE_TYPES)
    assert "image/jxl" not in DECODABLE_TYPES
    assert "image/svg+xml" not in DECODABLE_TYPES


def test_repeated_accept_headers_become_one_in_the_first_place() -> None:
    client = [
        ("X-A", "1"),
        ("Accept", "image/jxl, image/webp"),
        ("X-B", "2"),
        ("accept", "image/svg+xml;q=0.9, image/*;q=0.8"),
    ]
    out = forwarded_headers(client, None)
    assert without_added(out)[:3] == [
        ("X-A", "1"),
        ("Accept", "image/webp,image/*;q=0.8"),
        ("X-B", "2"),
    ]
    assert len(values(out, "accept")) == 1


def test_no_accept_from_the_client_sends_none() -> None:
    out = forwarded_headers([("User-Agent", "ua")], None)
    assert "accept" not in names(out)


def test_accept_can_be_dropped_by_the_operator() -> None:
    out = forwarded_headers([("Accept", "image/jxl")], None, frozenset({"accept"}))
    assert "accept" not in names(out)


def test_the_request_id_replaces_the_clients() -> None:
    sent = [("X-Request-Id", "bad id"), ("x-request-id", "other"), ("Accept", "image/*")]
    out = forwarded_headers(sent, None, request_id="abc")
    assert [v for k, v in out if k.lower() == "x-request-id"] == ["abc"]
    dropped = forwarded_headers(sent, None, frozenset({"x-request-id"}), request_id="abc")
    assert not [v for k, v in dropped if k.lower() == "x-request-id"]
    kept = forwarded_headers([("X-Request-Id", "as-sent")], None)
    assert [v for k, v in kept if k.lower() == "x-request-id"] == ["as-sent"]
