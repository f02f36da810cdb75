"""warmplan: sizes, size ranges, headers, URL lists and the request paths."""

from __future__ import annotations

import itertools
import random

import pytest

from previewer import signing
from previewer.errors import InvalidSignature
from previewer.options import parse_request
from previewer.warm.plan import (
    PlanError,
    Signer,
    Size,
    SizeRange,
    every_path,
    parse_header,
    parse_operations,
    parse_size,
    parse_size_range,
    parse_sizes,
    parse_sources,
    random_paths,
)


def test_sizes_parse_in_order_without_repeats() -> None:
    assert parse_sizes("300x200, 640X480,300x200") == (Size(300, 200), Size(640, 480))
    assert str(parse_size(" 12 x 34 ")) == "12x34"


@pytest.mark.parametrize(
    "text", ["", "300", "300x", "x200", "0x10", "10x0", "-1x5", "3.5x2", "ax b"]
)
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(PlanError):
        parse_sizes(text)


def test_size_range_bounds_every_draw() -> None:
    span = parse_size_range("100x50-120x60")
    assert span == SizeRange(Size(100, 50), Size(120, 60))
    rng = random.Random(3)
    drawn = {span.draw(rng) for _ in range(2000)}
    assert all(100 <= s.width <= 120 and 50 <= s.height <= 60 for s in drawn)
    assert {s.width for s in drawn} == set(range(100, 121))  # every width is reachable


@pytest.mark.parametrize("text", ["100x100", "200x200-100x100", "100x200-200x100", "a-b"])
def test_bad_size_ranges_are_refused(text: str) -> None:
    with pytest.raises(PlanError):
        parse_size_range(text)


def test_headers() -> None:
    assert parse_header("Accept: image/webp, */*") == ("Accept", "image/webp, */*")
    assert parse_header("X-Empty:") == ("X-Empty", "")
    for bad in ("no colon", ": value", "Bad Name: v", "X: a\nb", "X: caf\u00e9", "X: a\x00"):
        with pytest.raises(PlanError):
            parse_header(bad)


def test_sources_skip_comments_and_escape_what_the_service_wants_escaped() -> None:
    lines = [
        "# popular images\n",
        "example.com/a.jpg\n",
        "\n",
        "  https://example.com/b c.jpg?size=big \n",
        "http://example.com/100%.jpg\n",
        "example.com/caf\u00e9.jpg",
    ]
    assert parse_sources(lines) == (
        "example.com/a.jpg",
        "https://example.com/b%20c.jpg?size=big",
        "http://example.com/100%25.jpg",
        "example.com/caf%C3%A9.jpg",
    )


def test_a_bad_source_line_is_named_by_its_number() -> None:
    with pytest.raises(PlanError, match="line 3"):
        parse_sources(["example.com/a.jpg", "# ok", "ftp://example.com/a.jpg"])
    with pytest.raises(PlanError, match="empty"):
        parse_sources(["# nothing", "  "])


def test_every_path_covers_each_source_at_each_size_grouped_by_source() -> None:
    paths = list(every_path(("a.test/1", "b.test/2"), (Size(3, 4), Size(5, 6)), Signer()))
    assert paths == [
        "/fill/3/4/a.test/1",
        "/fill/5/6/a.test/1",
        "/fill/3/4/b.test/2",
        "/fill/5/6/b.test/2",
    ]
    for path in paths:
        parse_request(path, max_dimension=100, gravity="centre", quality=80)


def test_signed_paths_pass_the_services_check() -> None:
    signer = Signer(b"key", b"salt")
    (path,) = every_path(("a.test/x.jpg?v=1",), (Size(30, 20),), signer)
    assert signing.verify(path, b"key", b"salt") == "/fill/30/20/a.test/x.jpg?v=1"
    with pytest.raises(InvalidSignature):
        signing.verify(path, b"other", b"salt")


def test_random_paths_are_seeded_and_counted() -> None:
    sources, sizes = ("a.test/1", "b.test/2", "c.test/3"), (Size(1, 1), Size(2, 2))
    first = list(random_paths(sources, sizes, Signer(), seed=5, count=200))
    assert first == list(random_paths(sources, sizes, Signer(), seed=5, count=200))
    assert first != list(random_paths(sources, sizes, Signer(), seed=6, count=200))
    assert len(first) == 200
    assert set(first) == {f"/fill/{s.width}/{s.height}/{u}" for u in sources for s in sizes}


def test_random_paths_without_a_count_do_not_end() -> None:
    endless = random_paths(("a.test/1",), SizeRange(Size(1, 1), Size(9, 9)), Signer(), 1, None)
    assert len(list(itertools.islice(endless, 5000))) == 5000


# --- operations (--op) -----------------------------------------------------------------


def test_operations_parse_in_order_without_repeats() -> None:
    assert parse_operations("fill") == ("fill",)
    assert parse_operations(" fit , fill,fit") == ("fit", "fill")


@pytest.mark.parametrize("text", ["", " , ", "crop", "fill,fitx", "FIT"])
def test_bad_operations_are_refused(text: str) -> None:
    with pytest.raises(PlanError, match="fill, fit or fill,fit"):
        parse_operations(text)


def test_every_path_asks_each_size_in_each_operation() -> None:
    paths = list(every_path(("a.test/1",), (Size(3, 4), Size(5, 6)), Signer(), ("fill", "fit")))
    assert paths == [
        "/fill/3/4/a.test/1",
        "/fit/3/4/a.test/1",
        "/fill/5/6/a.test/1",
        "/fit/5/6/a.test/1",
    ]
    for path in paths:
        parse_request(path, max_dimension=100, gravity="centre", quality=80)


def test_signed_fit_paths_pass_the_services_check() -> None:
    (path,) = every_path(("a.test/x.jpg",), (Size(30, 20),), Signer(b"key", b"salt"), ("fit",))
    assert signing.verify(path, b"key", b"salt") == "/fit/30/20/a.test/x.jpg"


def test_random_paths_draw_the_operation_too() -> None:
    sources, sizes = ("a.test/1", "b.test/2"), (Size(1, 1), Size(2, 2))
    both = list(random_paths(sources, sizes, Signer(), 5, 400, ("fill", "fit")))
    assert {path.split("/")[1] for path in both} == {"fill", "fit"}
    fit_only = list(random_paths(sources, sizes, Signer(), 5, 50, ("fit",)))
    fill_only = list(random_paths(sources, sizes, Signer(), 5, 50))
    # one operation draws nothing for it: the same seed gives the same sources and sizes
    assert [p.replace("/fit/", "/fill/", 1) for p in fit_only] == fill_only
