"""What `previewer warm` asks for: its arguments, sizes, sources, headers and the paths.

Pure: imports nothing that touches the network, the disk or libvips.

Two kinds of plan:
- `every_path`: each source at each size, in order (a cache warm-up);
- `random_paths`: a seeded random mix of sources and sizes (a load test),
  `count` of them, or without end for a run bounded by time.

Paths are the service's own (`/fill/{w}/{h}/{source}`, or `/fit/...` for
the operations `--op` names), signed in front when a key is given, exactly as
`previewer sign` signs them.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from previewer import signing
from previewer.errors import InvalidRequest
from previewer.options import FILL, OPERATIONS, parse_source

_SIZE_RE = re.compile(r"\s*([0-9]{1,6})\s*[xX]\s*([0-9]{1,6})\s*")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# What the service takes unescaped in a source (see options.py); the rest is percent-encoded.
_UNRESERVED = re.compile(r"[^A-Za-z0-9\-._~!$&'()*+,;=:@/?%]")


class PlanError(ValueError):
    """A bad argument or URL line; the message says which."""


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class SizeRange:
    """Sizes drawn uniformly: width in [low.width, high.width], height likewise."""

    low: Size
    high: Size

    def draw(self, rng: random.Random) -> Size:
        return Size(
            rng.randint(self.low.width, self.high.width),
            rng.randint(self.low.height, self.high.height),
        )


def parse_size(text: str) -> Size:
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise PlanError(f"not a size: {text!r} (use WIDTHxHEIGHT, e.g. 300x200)")
    size = Size(int(match.group(1)), int(match.group(2)))
    if size.width < 1 or size.height < 1:
        raise PlanError(f"not a size: {text!r} (width and height start at 1)")
    return size


def parse_sizes(text: str) -> tuple[Size, ...]:
    """`300x200,640x480` -> two sizes, duplicates dropped, order kept."""
    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise PlanError("no size given (use e.g. 300x200,640x480)")
    return tuple(dict.fromkeys(sizes))


def parse_operations(text: str) -> tuple[str, ...]:
    """`fill`, `fit` or `fill,fit` -> the operations asked for, duplicates dropped, order kept."""
    operations = [part.strip() for part in text.split(",") if part.strip()]
    if not operations:
        raise PlanError("no operation given (use fill, fit or fill,fit)")
    for operation in operations:
        if operation not in OPERATIONS:
            raise PlanError(f"unknown operation {operation!r} (use fill, fit or fill,fit)")
    return tuple(dict.fromkeys(operations))


def parse_size_range(text: str) -> SizeRange:
    """`100x100-800x600`: widths 100..800 and heights 100..600."""
    low_text, dash, high_text = text.partition("-")
    if not dash:
        raise PlanError(f"not a size range: {text!r} (use e.g. 100x100-800x600)")
    low, high = parse_size(low_text), parse_size(high_text)
    if low.width > high.width or low.height > high.height:
        raise PlanError(f"empty size range: {text!r} (the first size is the smaller)")
    return SizeRange(low, high)


def parse_header(text: str) -> tuple[str, str]:
    """`Name: value` -> (name, value); a name must be an HTTP token."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not _TOKEN_RE.fullmatch(name):
        raise PlanError(f"not a header: {text!r} (use 'Name: value')")
    value = value.strip()
    if not value.isascii() or not value.isprintable():
        raise PlanError(f"header {name}: the value must be printable ASCII")
    return name, value


def parse_sources(lines: Iterable[str]) -> tuple[str, ...]:
    """Source addresses, one a line; blank lines and `#` comments are skipped.

    A line is what follows `/fill/{w}/{h}/`: `host/path`, or an `http://` or
    `https://` URL. Characters the service wants percent-encoded are encoded;
    a line the service would refuse raises PlanError naming its number.
    """
    sources: list[str] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        text = _UNRESERVED.sub(lambda m: "".join(f"%{b:02X}" for b in m[0].encode()), text)
        text = re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", text)
        try:
            parse_source(text)
        except InvalidRequest as exc:
            raise PlanError(f"line {number}: {exc.public_message} ({line.strip()!r})") from None
        sources.append(text)
    if not sources:
        raise PlanError("the URL list is empty")
    return tuple(sources)


@dataclass(frozen=True)
class Signer:
    """Signs `/fill/...` and `/fit/...` paths; an empty key leaves them as they are."""

    key: bytes = b""
    salt: bytes = b""

    def path(self, source: str, size: Size, operation: str = FILL) -> str:
        path = f"/{operation}/{size.width}/{size.height}/{source}"
        return signing.signed_path(path, self.key, self.salt) if self.key else path


def every_path(
    sources: Sequence[str],
    sizes: Sequence[Size],
    signer: Signer,
    operations: Sequence[str] = (FILL,),
) -> Iterator[str]:
    """Each source at each size in each operation: all paths of one source together
    (they share its fetch)."""
    for source in sources:
        for size in sizes:
            for operation in operations:
                yield signer.path(source, size, operation)


def random_paths(
    sources: Sequence[str],
    sizes: Sequence[Size] | SizeRange,
    signer: Signer,
    seed: int,
    count: int | None,
    operations: Sequence[str] = (FILL,),
) -> Iterator[str]:
    """`count` paths (None: without end) of a uniformly drawn source, size and operation.

    With one operation nothing is drawn for it: a seed gives the same sources
    and sizes whatever that operation is.
    """
    rng = random.Random(seed)
    made = 0
    while count is None or made < count:
        # random() and a product: uniform enough, and a third of randrange's cost
        source = sources[int(rng.random() * len(sources))]
        if isinstance(sizes, SizeRange):
            size = sizes.draw(rng)
        else:
            size = sizes[int(rng.random() * len(sizes))]
        operation = operations[0]
        if len(operations) > 1:
            operation = operations[int(rng.random() * len(operations))]
        yield signer.path(source, size, operation)
        made += 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET_BASE_URL", help="e.g. http://127.0.0.1:8080")
    parser.add_argument(
        "--urls", metavar="FILE", required=True, help="source URLs, one a line; - reads stdin"
    )
    parser.add_argument("--sizes", metavar="WxH,...", help="sizes asked for, e.g. 300x200,640x480")
    parser.add_argument(
        "--random-sizes",
        metavar="WxH-WxH",
        help="with --requests or --duration: sizes drawn from this range instead of --sizes",
    )
    parser.add_argument(
        "--op",
        metavar="OP[,OP]",
        default=FILL,
        help="the operations asked for: fill, fit or fill,fit (each source and size in each; "
        "default: fill)",
    )
    parser.add_argument("--concurrency", metavar="N", type=int, default=8, help="(default: 8)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--requests", metavar="N", type=int, help="a random mix of N requests")
    mode.add_argument("--duration", metavar="S", type=float, help="a random mix for S seconds")
    parser.add_argument("--seed", metavar="N", type=int, help="seed of the random mix")
    parser.add_argument(
        "--header",
        metavar="'Name: value'",
        action="append",
        default=[],
        help="a request header, repeatable",
    )
    parser.add_argument("--timeout", metavar="S", type=float, default=60.0, help="per request")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--max-error-ratio",
        metavar="R",
        type=float,
        default=0.0,
        help="exit 1 when errors / requests is above R (default: 0, any error)",
    )
