"""previewer.options: /fill/{w}/{h}/{source} parsing, normalisation and the cache key."""

from __future__ import annotations

import dataclasses
from http import HTTPStatus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from previewer.errors import InvalidRequest
from previewer.options import (
    AUTO,
    AVIF,
    MAX_SOURCE_LENGTH,
    WEBP,
    Output,
    OutputRules,
    PreviewOptions,
    accepted_types,
    negotiate,
    parse_request,
    parse_source,
)

MAX = 4096


def parse(raw_path: str, *, gravity: str = "centre", quality: int = 80) -> PreviewOptions:
    return parse_request(raw_path, max_dimension=MAX, gravity=gravity, quality=quality)


def source_of(raw_source: str) -> str:
    return str(parse(f"/fill/100/100/{raw_source}").source)


# --- malformed requests: every one is a 400 ---------------------------------------


@pytest.mark.parametrize(
    "raw_path",
    [
        "",
        "/",
        "/fill",
        "/fill/",
        "/fill/100",
        "/fill/100/",
        "/fill/100/100",
        "/fill/100/100/",
        "/fill/100/100/?id=5",
        "fill/100/100/example.com/a.jpg",
        "//fill/100/100/example.com/a.jpg",
    ],
)
def test_missing_parts_are_rejected(raw_path: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(raw_path)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "abc",
        "0",
        "00",
        "-5",
        "+5",
        "1.5",
        "100.0",
        "1e3",
        "0x10",
        " 100",
        "100 ",
        "%31%30",
        "\uff13",  # FULLWIDTH DIGIT THREE
        "\u0663",  # ARABIC-INDIC DIGIT THREE
        "1234567",  # too many digits
        "0000100",  # too many digits even though the value is small
        str(MAX + 1),
        "999999",
    ],
)
@pytest.mark.parametrize("position", ["width", "height"])
def test_bad_dimensions_are_rejected(value: str, position: str) -> None:
    width, height = (value, "100") if position == "width" else ("100", value)
    with pytest.raises(InvalidRequest) as info:
        parse(f"/fill/{width}/{height}/example.com/a.jpg")
    assert position in info.value.public_message


def test_dimension_bounds_are_inclusive() -> None:
    options = parse(f"/fill/1/{MAX}/example.com/a.jpg")
    assert (options.width, options.height) == (1, MAX)


def test_max_dimension_is_the_callers() -> None:
    with pytest.raises(InvalidRequest):
        parse_request("/fill/11/10/example.com/a", max_dimension=10, gravity="centre", quality=80)
    assert (
        parse_request(
            "/fill/10/10/example.com/a", max_dimension=10, gravity="centre", quality=80
        ).width
        == 10
    )


@pytest.mark.parametrize(
    "operation", ["crop", "fitx", "Fit", "FIT", "fill-in", "FILL", "Fill", "resize", ""]
)
def test_unknown_operation_is_rejected(operation: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/{operation}/100/100/example.com/a.jpg")


@pytest.mark.parametrize(
    "source",
    [
        "ftp://example.com/a.jpg",
        "FTP://example.com/a.jpg",
        "file:/etc/passwd",
        "file:///etc/passwd",
        "gopher://example.com/a",
        "javascript:/alert(1)",
        "data:/image/png",
        "ws://example.com/a",
    ],
)
def test_unsupported_schemes_are_rejected(source: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{source}")


@pytest.mark.parametrize(
    "source",
    [
        "http://",
        "https://",
        "https:/",
        "http:///a.jpg",
        "https:///a.jpg",
        ":8080/a.jpg",
        "?a=1",
    ],
)
def test_empty_host_is_rejected(source: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{source}")


@pytest.mark.parametrize(
    "source",
    [
        "a@b/x.jpg",
        "user:pass@example.com/a.jpg",
        "http://user@example.com/a.jpg",
        "https://user:pass@example.com/a.jpg",
        "http://@example.com/a.jpg",
    ],
)
def test_userinfo_is_rejected(source: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{source}")


@pytest.mark.parametrize(
    "source",
    [
        "example.com:0/a.jpg",
        "example.com:00000/a.jpg",
        "example.com:70000/a.jpg",
        "example.com:65536/a.jpg",
        "example.com:123456/a.jpg",
        "example.com:80a/a.jpg",
        "example.com:-1/a.jpg",
        "http://example.com:/a.jpg",
        "[::1]:0/a.jpg",
        "[::1]:99999/a.jpg",
    ],
)
def test_bad_ports_are_rejected(source: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{source}")


@pytest.mark.parametrize(
    "host",
    [
        "exa$mple.com",
        "exa%20mple.com",
        "example.com%2F",
        "exa mple.com",
        "exa\tmple.com",
        "-example.com",
        "example-.com",
        "a..b",
        ".example.com",
        "example.com..",
        "a" * 64 + ".com",
        ".".join(["a" * 60] * 5),  # over 253 characters
        "[zz::1]",
        "[::1",
        "::1",
        "[::::::]",
        "[1:2:3]",
        "[12345::]",
        "[]",
        "exa<mple.com",
        "exa\\mple.com",
        "\u00fc" * 64 + ".de",  # IDNA refuses a label this long
    ],
)
def test_bad_hosts_are_rejected(host: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{host}/a.jpg")


@pytest.mark.parametrize(
    "path",
    [
        "/a%zz.jpg",
        "/a%4.jpg",
        "/a%",
        "/a%%41",
        "/a b.jpg",
        "/a\tb.jpg",
        '/a"b.jpg',
        "/a<b>.jpg",
        "/a.jpg#fragment",
        "/a\\b.jpg",
        "/\u00fc.jpg",
        "/a.jpg?q=a b",
        "/a.jpg?q=%zz",
    ],
)
def test_bad_path_characters_are_rejected(path: str) -> None:
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/example.com{path}")


def test_source_length_limit() -> None:
    prefix = "example.com/"
    at_limit = prefix + "a" * (MAX_SOURCE_LENGTH - len(prefix))
    assert len(at_limit) == MAX_SOURCE_LENGTH
    assert str(parse(f"/fill/100/100/{at_limit}").source) == "http://" + at_limit
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{at_limit}a")


def test_source_length_limit_counts_the_query() -> None:
    prefix = "example.com/a.jpg?"
    over = prefix + "q" * (MAX_SOURCE_LENGTH - len(prefix) + 1)
    path, _, query = over.partition("?")
    with pytest.raises(InvalidRequest):
        parse(f"/fill/100/100/{path}?{query}")


def test_an_empty_source_is_missing() -> None:
    with pytest.raises(InvalidRequest, match="missing"):
        parse_source("")


def test_invalid_request_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse("/fill/100")
    assert info.value.status == HTTPStatus.BAD_REQUEST
    assert info.value.public_message


# --- accepted forms -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw_source", "expected"),
    [
        ("example.com/a.jpg", "http://example.com/a.jpg"),
        ("example.com", "http://example.com/"),
        ("example.com:8080/a.jpg", "http://example.com:8080/a.jpg"),
        ("http://example.com/a.jpg", "http://example.com/a.jpg"),
        ("https://example.com/a.jpg", "https://example.com/a.jpg"),
        ("HTTPS://example.com/a.jpg", "https://example.com/a.jpg"),
        # a proxy or client may merge the double slash
        ("https:/example.com/p", "https://example.com/p"),
        ("http:/example.com/p", "http://example.com/p"),
        ("example.com/img.php?id=5", "http://example.com/img.php?id=5"),
        ("example.com?id=5", "http://example.com/?id=5"),
        ("example.com/a%20b%2Fc.jpg", "http://example.com/a%20b%2Fc.jpg"),
        ("example.com/a%2fb", "http://example.com/a%2fb"),
        ("example.com/Dir/IMG.JPG", "http://example.com/Dir/IMG.JPG"),
        ("example.com/a/../b/./c.jpg", "http://example.com/a/../b/./c.jpg"),
        ("example.com//double//slash", "http://example.com//double//slash"),
        ("Example.COM/A.jpg", "http://example.com/A.jpg"),
        ("example.com./a.jpg", "http://example.com/a.jpg"),
        ("example.com:80/a.jpg", "http://example.com/a.jpg"),
        ("http://example.com:80/a.jpg", "http://example.com/a.jpg"),
        ("https://example.com:443/a.jpg", "https://example.com/a.jpg"),
        ("https://example.com:80/a.jpg", "https://example.com:80/a.jpg"),
        ("http://example.com:443/a.jpg", "http://example.com:443/a.jpg"),
        ("example.com:65535/a", "http://example.com:65535/a"),
        ("example.com:1/a", "http://example.com:1/a"),
        ("b\u00fccher.de/a.jpg", "http://xn--bcher-kva.de/a.jpg"),
        ("B\u00dcCHER.de/a.jpg", "http://xn--bcher-kva.de/a.jpg"),
        ("xn--bcher-kva.de/a.jpg", "http://xn--bcher-kva.de/a.jpg"),
        ("[::1]:8080/a.jpg", "http://[::1]:8080/a.jpg"),
        ("[::1]/a.jpg", "http://[::1]/a.jpg"),
        ("[2001:DB8::A]/a.jpg", "http://[2001:db8::a]/a.jpg"),
        ("https://[::1]:443/a.jpg", "https://[::1]/a.jpg"),
        ("[::ffff:127.0.0.1]/a", "http://[::ffff:127.0.0.1]/a"),
        ("127.0.0.1:8080/a.jpg", "http://127.0.0.1:8080/a.jpg"),
        ("a_b.example.com/a", "http://a_b.example.com/a"),
        (
            "example.com/a.jpg?x=1&y=2;z=(3)!*'~@:$,",
            "http://example.com/a.jpg?x=1&y=2;z=(3)!*'~@:$,",
        ),
        ("example.com/a.jpg?next=/b?c", "http://example.com/a.jpg?next=/b?c"),
    ],
)
def test_accepted_sources(raw_source: str, expected: str) -> None:
    assert source_of(raw_source) == expected


def test_parsed_fields() -> None:
    options = parse("/fill/320/200/https://Example.com:8443/Dir/a.jpg?id=5", gravity="attention")
    assert options.operation == "fill"
    assert (options.width, options.height) == (320, 200)
    assert options.gravity == "attention"
    assert options.quality == 80
    source = options.source
    assert source.scheme == "https"
    assert source.host == "example.com"
    assert source.port == 8443
    assert source.effective_port == 8443
    assert source.target == "/Dir/a.jpg?id=5"
    assert source.authority == "example.com:8443"


def test_default_port_is_dropped_but_still_effective() -> None:
    http = parse("/fill/1/1/example.com:80/a").source
    https = parse("/fill/1/1/https://example.com:443/a").source
    assert (http.port, http.effective_port) == (None, 80)
    assert (https.port, https.effective_port) == (None, 443)


def test_ipv6_host_is_stored_without_brackets() -> None:
    source = parse("/fill/1/1/[::1]:8080/a.jpg").source
    assert source.host == "::1"
    assert source.port == 8080
    assert source.authority == "[::1]:8080"


def test_leading_zeros_in_dimensions_give_the_same_value() -> None:
    assert parse("/fill/0100/007/example.com/a").width == 100
    assert parse("/fill/0100/007/example.com/a").height == 7


# --- the cache key ----------------------------------------------------------------


def key(raw_path: str, *, gravity: str = "centre", quality: int = 80) -> str:
    cache_key: str = parse(raw_path, gravity=gravity, quality=quality).cache_key()
    return cache_key


@pytest.mark.parametrize(
    "spellings",
    [
        [
            "/fill/100/80/example.com/a.jpg",
            "/fill/100/80/EXAMPLE.com/a.jpg",
            "/fill/100/80/Example.Com./a.jpg",
            "/fill/100/80/example.com:80/a.jpg",
            "/fill/100/80/http://example.com/a.jpg",
            "/fill/100/80/HTTP://example.com:80/a.jpg",
            "/fill/100/80/http:/example.com/a.jpg",
            "/fill/0100/080/example.com/a.jpg",
        ],
        [
            "/fill/10/10/https://example.com/a.jpg",
            "/fill/10/10/https://example.com:443/a.jpg",
            "/fill/10/10/https:/EXAMPLE.COM/a.jpg",
        ],
        [
            "/fill/10/10/b\u00fccher.de/a.jpg",
            "/fill/10/10/xn--bcher-kva.de/a.jpg",
            "/fill/10/10/XN--BCHER-KVA.DE/a.jpg",
        ],
        ["/fill/10/10/[::1]:8080/a", "/fill/10/10/http://[::1]:8080/a"],
        ["/fill/10/10/example.com", "/fill/10/10/example.com/"],
    ],
)
def test_equivalent_spellings_share_a_key(spellings: list[str]) -> None:
    keys = {key(path) for path in spellings}
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("/fill/100/80/example.com/a.jpg", "/fill/101/80/example.com/a.jpg"),
        ("/fill/100/80/example.com/a.jpg", "/fill/100/81/example.com/a.jpg"),
        ("/fill/100/80/example.com/a.jpg", "/fill/80/100/example.com/a.jpg"),
        ("/fill/10/180/example.com/a.jpg", "/fill/101/80/example.com/a.jpg"),
        ("/fill/1/1/example.com/a.jpg", "/fill/1/1/example.com/A.jpg"),
        ("/fill/1/1/example.com/a.jpg?x=1&y=2", "/fill/1/1/example.com/a.jpg?y=2&x=1"),
        ("/fill/1/1/example.com/a.jpg", "/fill/1/1/example.com/a.jpg?"),
        ("/fill/1/1/example.com/a.jpg", "/fill/1/1/example.com/a.jpg?x=1"),
        ("/fill/1/1/example.com/A.jpg", "/fill/1/1/example.com/%41.jpg"),
        ("/fill/1/1/example.com/a%2Fb", "/fill/1/1/example.com/a/b"),
        ("/fill/1/1/example.com/a%20b", "/fill/1/1/example.com/a+b"),
        ("/fill/1/1/example.com/b", "/fill/1/1/example.com/a/../b"),
        ("/fill/1/1/example.com/a/", "/fill/1/1/example.com/a"),
        ("/fill/1/1/example.com/a", "/fill/1/1/https://example.com/a"),
        ("/fill/1/1/example.com/a", "/fill/1/1/example.com:8080/a"),
        ("/fill/1/1/https://example.com/a", "/fill/1/1/https://example.com:80/a"),
        ("/fill/1/1/example.com/a", "/fill/1/1/www.example.com/a"),
        ("/fill/1/1/example.com/a", "/fill/1/1/example.org/a"),
    ],
)
def test_anything_that_changes_the_output_changes_the_key(first: str, second: str) -> None:
    assert key(first) != key(second)


def test_gravity_and_quality_change_the_key() -> None:
    path = "/fill/100/100/example.com/a.jpg"
    keys = {key(path, gravity=g) for g in ("centre", "attention", "attention-only")}
    assert len(keys) == 3
    assert key(path, quality=80) != key(path, quality=81)
    assert key(path, quality=8) != key(path, quality=80)


def test_attention_only_keeps_the_keys_attention_had_before_the_face_step() -> None:
    """The analysis alone is what `attention` was: its previews cached before the
    face step still answer for it, and face-aware previews never do."""
    path = "/fill/100/100/example.com/a.jpg"
    before = "v1|fill|100x100|g=attention|q=80|f=auto|http://example.com/a.jpg"
    assert key(path, gravity="attention-only") == before
    assert key(path, gravity="attention") != before


@given(
    first=st.tuples(st.integers(1, MAX), st.integers(1, MAX)),
    second=st.tuples(st.integers(1, MAX), st.integers(1, MAX)),
)
def test_key_is_equal_exactly_when_sizes_are(
    first: tuple[int, int], second: tuple[int, int]
) -> None:
    a = key(f"/fill/{first[0]}/{first[1]}/example.com/a.jpg")
    b = key(f"/fill/{second[0]}/{second[1]}/example.com/a.jpg")
    assert (a == b) == (first == second)


_PATH_CHARS = st.text(
    alphabet=st.sampled_from("abcXYZ019-._~!$&'()*+,;=:@/"), min_size=0, max_size=20
)


@given(first=_PATH_CHARS, second=_PATH_CHARS)
def test_key_is_equal_exactly_when_paths_are(first: str, second: str) -> None:
    a = key(f"/fill/10/10/example.com/{first}")
    b = key(f"/fill/10/10/example.com/{second}")
    assert (a == b) == (first == second)


# --- output format negotiation ------------------------------------------------------

# The Accept headers browsers send for <img>.
CHROMIUM = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX = "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
FIREFOX_92_TO_127 = "image/avif,image/webp,*/*"
SAFARI = (
    "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
    "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5"
)
SAFARI_WEBP_ONLY = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"

RULES = OutputRules(
    webp=True, avif=True, quality=80, webp_quality=81, avif_quality=61, avif_effort=3
)


@pytest.mark.parametrize(
    ("accept", "both", "webp_only", "avif_only"),
    [
        (CHROMIUM, AVIF, WEBP, AVIF),
        (FIREFOX, AVIF, WEBP, AVIF),
        (FIREFOX_92_TO_127, AVIF, WEBP, AVIF),
        (SAFARI, AVIF, WEBP, AVIF),
        (SAFARI_WEBP_ONLY, WEBP, WEBP, AUTO),
        ("*/*", AUTO, AUTO, AUTO),
        ("image/*", AUTO, AUTO, AUTO),
        ("image/*,*/*;q=0.8", AUTO, AUTO, AUTO),
        ("", AUTO, AUTO, AUTO),
        (None, AUTO, AUTO, AUTO),
        ("image/jpeg", AUTO, AUTO, AUTO),
        ("image/avif;q=0", AUTO, AUTO, AUTO),
        ("image/avif;q=0.0, image/webp", WEBP, WEBP, AUTO),
        ("image/avif; q=0.000, image/webp;q=0", AUTO, AUTO, AUTO),
        ("image/avif;q=0.001", AVIF, AUTO, AVIF),
        ("image/webp;q=1.000", WEBP, WEBP, AUTO),
        ("image/avif, image/avif;q=0", AUTO, AUTO, AUTO),  # refused anywhere: refused
        ("IMAGE/AVIF", AVIF, AUTO, AVIF),
        (" image/webp ; q=0.5 ", WEBP, WEBP, AUTO),
        ("image/webp;level=1;q=0.5", WEBP, WEBP, AUTO),
        ("image/avif;q=2", AUTO, AUTO, AUTO),  # malformed weight: ignored
        ("image/avif;q=abc, image/webp", WEBP, WEBP, AUTO),
        ("image/avif;q=-1", AUTO, AUTO, AUTO),
        ("image/avif;q=1.5", AUTO, AUTO, AUTO),
        ("image/avifx, ximage/webp", AUTO, AUTO, AUTO),
        (",,;;,", AUTO, AUTO, AUTO),
    ],
)
def test_negotiate(accept: str | None, both: str, webp_only: str, avif_only: str) -> None:
    assert negotiate(accept, webp=True, avif=True) == both
    assert negotiate(accept, webp=True, avif=False) == webp_only
    assert negotiate(accept, webp=False, avif=True) == avif_only
    assert negotiate(accept, webp=False, avif=False) == AUTO


def test_accepted_types_lists_only_the_named_and_acceptable() -> None:
    assert accepted_types(SAFARI_WEBP_ONLY) == {
        "image/webp",
        "image/png",
        "image/svg+xml",
        "image/*",
        "video/*",
        "*/*",
    }
    assert accepted_types("image/webp;q=0, */*") == {"*/*"}


@given(st.text(max_size=200))
def test_negotiate_takes_any_header_without_error(accept: str) -> None:
    assert negotiate(accept, webp=True, avif=True) in (AUTO, WEBP, AVIF)


def test_choose_gives_each_format_its_own_settings() -> None:
    assert RULES.choose(CHROMIUM) == Output(AVIF, 61, 3)
    assert RULES.choose(SAFARI_WEBP_ONLY) == Output(WEBP, 81)
    assert RULES.choose("*/*") == Output(AUTO, 80)
    assert RULES.negotiates
    off = dataclasses.replace(RULES, webp=False, avif=False)
    assert not off.negotiates
    assert off.choose(CHROMIUM) == Output(AUTO, 80)


def test_the_format_and_its_settings_are_in_the_cache_key() -> None:
    path = "/fill/100/80/example.com/a.jpg"
    keys = {
        parse_request(
            path, max_dimension=MAX, gravity="centre", quality=80, output=RULES.choose(accept)
        ).cache_key()
        for accept in (CHROMIUM, SAFARI_WEBP_ONLY, "*/*")
    }
    assert len(keys) == 3
    other_effort = dataclasses.replace(RULES, avif_effort=5)
    assert (
        parse_request(
            path,
            max_dimension=MAX,
            gravity="centre",
            quality=80,
            output=other_effort.choose(CHROMIUM),
        ).cache_key()
        not in keys
    )


def test_accept_values_leading_to_one_format_give_one_key() -> None:
    path = "/fill/100/80/example.com/a.jpg"
    keys = {
        parse_request(
            path, max_dimension=MAX, gravity="centre", quality=80, output=RULES.choose(accept)
        ).cache_key()
        for accept in (CHROMIUM, FIREFOX, FIREFOX_92_TO_127, SAFARI)
    }
    assert len(keys) == 1


def test_the_default_format_keeps_the_key_it_had_before_negotiation() -> None:
    """Entries cached before WebP and AVIF existed stay valid."""
    options = parse_request(
        "/fill/100/80/example.com/a.jpg",
        max_dimension=MAX,
        gravity="centre",
        quality=80,
        output=RULES.choose("*/*"),
    )
    assert options.cache_key() == "v1|fill|100x80|g=centre|q=80|f=auto|http://example.com/a.jpg"
    assert options == parse("/fill/100/80/example.com/a.jpg")


# --- fit ---------------------------------------------------------------------------


def test_fit_is_parsed_like_fill() -> None:
    options = parse("/fit/300/200/https://example.com/a.jpg?v=2")
    assert (options.operation, options.width, options.height) == ("fit", 300, 200)
    assert str(options.source) == "https://example.com/a.jpg?v=2"


@pytest.mark.parametrize(
    "raw_path",
    ["/fit", "/fit/", "/fit/100", "/fit/100/100", "/fit/100/100/", "/fit/0/1/a", "/fit/1/x/a"],
)
def test_a_malformed_fit_path_is_rejected_and_named(raw_path: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(raw_path)
    assert info.value.status == HTTPStatus.BAD_REQUEST


def test_a_missing_part_names_the_operation_of_the_path() -> None:
    with pytest.raises(InvalidRequest, match=r"/fit/\{width\}"):
        parse("/fit/100/100")
    with pytest.raises(InvalidRequest, match=r"/fill/\{width\}"):
        parse("/fill/100/100")


def test_fit_and_fill_of_one_size_and_source_have_two_keys() -> None:
    assert key("/fit/100/100/example.com/a.jpg") != key("/fill/100/100/example.com/a.jpg")


def test_gravity_is_not_part_of_a_fit_key() -> None:
    path = "/fit/100/100/example.com/a.jpg"
    assert key(path, gravity="centre") == key(path, gravity="attention")
    assert key(path) == "v1|fit|100x100|q=80|f=auto|http://example.com/a.jpg"
    assert key(path, quality=80) != key(path, quality=81)
