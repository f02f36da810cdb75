"""Output formats on the bench corpus: JPEG, WebP and AVIF side by side, in one run.

    .venv/bin/python bench/formats.py [--quick] [--json] [--docs DIR]

A stage of `make bench`; `make bench-formats` runs it --quick. Needs the corpus, wrk and
nginx (bench/setup.sh). docs/formats.md describes the method and what --quick leaves out;
--docs writes the figures there and into the `formats` block of DIR/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean, median

import corpus
import peers
import pyvips
import quality
from load import Result, measure
from writer import table, write_block

from previewer.config.settings import ImagingConfig
from previewer.render import imaging

WORK = Path(__file__).resolve().parent / ".work" / "formats"
DEFAULTS = ImagingConfig()
CONCURRENCY = 4
ACCEPT = {  # what a client sends to get each format from a service with --webp --avif
    "jpeg": "*/*",
    "webp": "image/webp,*/*;q=0.8",
    "avif": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
}
BLOCKS = {
    "formats.md": ("<!-- bench/formats.py: start -->", "<!-- bench/formats.py: end -->"),
    "benchmarks.md": ("<!-- make bench: formats -->", "<!-- make bench: formats end -->"),
}


@dataclass(frozen=True)
class Plan:
    efforts: tuple[int, ...]  # AVIF efforts encoded in process
    http_efforts: tuple[int, ...]  # AVIF efforts over HTTP
    repeats: int  # encodes per photo and variant
    reps: int  # wrk runs per variant
    seconds: float  # per wrk run
    sweep: bool  # WebP and AVIF at other qualities: how the defaults were chosen


FULL = Plan((0, 1, 2, 3, 4, 6), (2, 3, 4), 5, 3, 10.0, True)
QUICK = Plan((2, 3, 4), (DEFAULTS.avif_effort,), 2, 1, 6.0, False)


@dataclass(frozen=True)
class Variant:
    name: str  # "jpeg", "webp", "avif-e4", "webp-q70", ...
    format: str  # "auto" (JPEG), "webp", "avif"
    quality: int
    effort: int = 0


@dataclass(frozen=True)
class Encoded:
    """One variant on each photo, in corpus order."""

    variant: Variant
    bytes: list[int]
    ssim: list[float]  # against the full-decode reference of bench/quality.py
    encode_ms: list[float]  # median of the encodes


@dataclass(frozen=True)
class Formats:
    date: str
    libvips: str
    repeats: int
    ceiling: float  # mean SSIM of the pixels before encoding
    encoded: dict[str, Encoded]
    reps: int
    seconds: float
    misses: dict[str, list[Result]]  # per variant, its wrk runs; every request a miss


def variants(plan: Plan) -> list[Variant]:
    efforts = sorted(set(plan.efforts) | {DEFAULTS.avif_effort})
    out = [
        Variant("jpeg", "auto", DEFAULTS.quality),
        Variant("webp", "webp", DEFAULTS.webp_quality),
    ]
    out += [Variant(f"avif-e{e}", "avif", DEFAULTS.avif_quality, e) for e in efforts]
    if plan.sweep:
        webp = [q for q in (70, 75, 76, 77, 80, 85) if q != DEFAULTS.webp_quality]
        avif = [q for q in (50, 55, 58, 59, 62, 65, 70) if q != DEFAULTS.avif_quality]
        out += [Variant(f"webp-q{q}", "webp", q) for q in webp]
        out += [Variant(f"avif-q{q}", "avif", q, DEFAULTS.avif_effort) for q in avif]
    return out


def encode(
    photos: list[bytes], chosen: list[Variant], repeats: int
) -> tuple[dict[str, Encoded], float]:
    """Every variant encodes each photo's 300x200 centre-crop pixels with the service's
    encode, taking turns on each photo; and the mean SSIM of those pixels, the ceiling."""
    sizes: dict[str, list[int]] = {v.name: [] for v in chosen}
    ssims: dict[str, list[float]] = {v.name: [] for v in chosen}
    medians: dict[str, list[float]] = {v.name: [] for v in chosen}
    ceiling = []
    for index, body in enumerate(photos):
        pixels = pyvips.Image.thumbnail_buffer(body, 300, height=200, crop="centre").copy_memory()
        reference = quality.covered_reference(body)
        ceiling.append(quality.best_ssim(reference, quality.luma(pixels)))
        times: dict[str, list[float]] = {v.name: [] for v in chosen}
        outputs: dict[str, bytes] = {}
        for rep in range(repeats):
            shift = (index + rep) % len(chosen)  # each variant leads in turn
            for v in chosen[shift:] + chosen[:shift]:
                job = imaging.RenderJob(300, 200, "centre", v.quality, 10**9, v.format, v.effort)
                started = time.perf_counter()
                outputs[v.name], _ = imaging.encode(pixels, job)
                times[v.name].append((time.perf_counter() - started) * 1000)
        for name, out in outputs.items():
            decoded = pyvips.Image.new_from_buffer(out, "")
            sizes[name].append(len(out))
            ssims[name].append(round(quality.best_ssim(reference, quality.luma(decoded)), 4))
            medians[name].append(round(median(times[name]), 2))
    found = {v.name: Encoded(v, sizes[v.name], ssims[v.name], medians[v.name]) for v in chosen}
    return found, round(mean(ceiling), 4)


def _check_format(url: str, accept: str, content_type: str) -> None:
    request = urllib.request.Request(url, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as resp:
        got, vary = resp.headers["Content-Type"], resp.headers.get("Vary")
    if got != content_type or vary != "Accept":
        raise RuntimeError(f"Accept {accept!r} gave {got} (Vary {vary}), not {content_type}")


def misses(corpus_dir: Path, files: list[str], plan: Plan) -> dict[str, list[Result]]:
    """Miss req/s of each format, each run against a fresh `previewer serve --webp --avif`
    with the Accept that picks its format; the formats take turns within each repetition."""
    WORK.mkdir(parents=True, exist_ok=True)
    origin = peers.start_origin(WORK / "origin", corpus_dir)
    origin_port = int(origin.url.rsplit(":", 1)[1])
    order = [("jpeg", "image/jpeg", DEFAULTS.avif_effort), ("webp", "image/webp", 0)]
    order += [(f"avif-e{e}", "image/avif", e) for e in plan.http_efforts]
    runs: dict[str, list[Result]] = {name: [] for name, _, _ in order}
    paths = [peers.PEERS["previewer-centre"].path(f, origin_port) for f in files]
    try:
        for rep in range(plan.reps):
            for name, content_type, effort in order[rep % len(order) :] + order[: rep % len(order)]:
                accept = ACCEPT[name.split("-")[0]]
                extra = ("--webp", "--avif", "--avif-effort", str(effort))
                server = peers.start_previewer(WORK, "centre", extra=extra, name=f"http-{name}")
                try:
                    _check_format(server.url + paths[0], accept, content_type)
                    result = measure(
                        peer=f"previewer-{name}",
                        path="miss",
                        rep=rep + 1,
                        url=server.url,
                        paths=paths,
                        concurrency=CONCURRENCY,
                        duration=plan.seconds,
                        roots=server.roots,
                        origin_roots=origin.roots,
                        work=WORK,
                        nonce=uuid.uuid4().hex[:8],
                        headers=(f"Accept: {accept}",),
                    )
                finally:
                    server.stop()
                runs[name].append(result)
                print(
                    f"[formats] rep {rep + 1}: miss {name:8} {result.rps:7.1f} req/s "
                    f"p99 {result.p99_ms:7.0f} ms err {result.errors} "
                    f"other cpu {result.other_cpu_pct:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        origin.stop()
    return {name: rows for name, rows in runs.items() if rows}


def run(corpus_dir: Path, plan: Plan) -> Formats:
    imaging.configure()  # the service's libvips set-up: op cache off, loaders locked
    pyvips.operation_block_set("VipsForeignLoadHeif", False)  # to decode AVIF results here
    photos = {p.file: (corpus_dir / p.file).read_bytes() for p in corpus.load(corpus_dir)}
    chosen = variants(plan)
    print(f"[formats] encode: {len(chosen)} variants x {len(photos)} photos", file=sys.stderr)
    encoded, ceiling = encode(list(photos.values()), chosen, plan.repeats)
    found = misses(corpus_dir, list(photos), plan)
    libvips = f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    date = time.strftime("%Y-%m-%d")
    return Formats(date, libvips, plan.repeats, ceiling, encoded, plan.reps, plan.seconds, found)


def _cells(e: Encoded, jpeg: Encoded, cpu: dict[str, float]) -> dict[str, str]:
    """One variant's figures by column; ratios to JPEG are medians over the photos."""
    ratio = round(median(b / j for b, j in zip(e.bytes, jpeg.bytes, strict=True)), 3)
    slower = median(ms / j for ms, j in zip(e.encode_ms, jpeg.encode_ms, strict=True))
    miss = cpu.get(e.variant.name)
    return {
        "quality": str(e.variant.quality),
        "bytes vs JPEG": "-"
        if e.variant.format == "auto"
        else f"{(1 - ratio) * 100:.0f}% smaller"
        if ratio < 1
        else f"{(ratio - 1) * 100:.0f}% larger",
        "total bytes": f"{sum(e.bytes):,}",
        "SSIM mean": f"{mean(e.ssim):.4f}",
        "SSIM min": f"{min(e.ssim):.4f}",
        "encode ms": f"{round(median(e.encode_ms), 2):.1f}",
        "encode vs JPEG": f"{slower:.1f}x",
        "CPU ms per miss": "-" if miss is None else f"{miss:.0f}",
        "miss cost vs JPEG": "-" if miss is None else f"{miss / cpu['jpeg']:.2f}x",
    }


def markdown(f: Formats) -> str:
    """The figures: formats at the defaults, AVIF by effort, misses over HTTP, the sweep."""
    effort = DEFAULTS.avif_effort
    cpu = {n: median(r.cpu_ms_per_request for r in runs) for n, runs in f.misses.items()}
    cells = {name: _cells(e, f.encoded["jpeg"], cpu) for name, e in f.encoded.items()}

    def rows(first: str, labels: dict[str, str], columns: list[str], align: str) -> str:
        body = [[label, *(cells[name][c] for c in columns)] for name, label in labels.items()]
        return table([first, *columns], body, align)

    costs = ["encode ms", "encode vs JPEG", "CPU ms per miss", "miss cost vs JPEG"]
    shown = {"jpeg": "JPEG", "webp": "WebP", f"avif-e{effort}": f"AVIF, effort {effort}"}
    defaults = {name: f"{label} (q{cells[name]['quality']})" for name, label in shown.items()}
    columns = ["bytes vs JPEG", "total bytes", "SSIM mean", "SSIM min", *costs]
    efforts = {
        name: match[1] + (" (default)" if int(match[1]) == effort else "")
        for name in f.encoded
        if (match := re.fullmatch(r"avif-e(\d+)", name))
    }
    parts = [
        f"{len(f.encoded['jpeg'].bytes)} corpus photos, {f.repeats} encodes each; the pixels "
        f"before encoding score SSIM {f.ceiling:.4f}, the ceiling.",
        rows("format (quality)", defaults, columns, "l" + "r" * 8),
        f"AVIF at q{DEFAULTS.avif_quality} by encoder effort (0 fastest, 9 smallest), "
        "same photos and run:",
        rows("effort", efforts, ["bytes vs JPEG", "SSIM mean", *costs], "r" * 7),
    ]
    if f.misses:
        body = [
            [
                name,
                f"{median(r.rps for r in runs):.1f}",
                f"{median(r.p99_ms for r in runs):.0f}",
                cells[name]["CPU ms per miss"],
                cells[name]["miss cost vs JPEG"],
                f"{median(r.other_cpu_pct for r in runs):.0f}%",
            ]
            for name, runs in f.misses.items()
        ]
        head = ["variant", "miss req/s", "p99 ms", "CPU ms per miss", "vs JPEG"]
        parts += [
            f"Misses over HTTP: wrk at {CONCURRENCY} connections for {f.seconds:g} s, "
            f"{f.reps} runs per variant:",
            table([*head, "other programs' CPU"], body, "l" + "r" * 5),
        ]
    sweep = [n for n in f.encoded if re.fullmatch(r"(webp|avif)-q\d+", n)]
    if sweep:
        chosen = [f.encoded[n] for n in ["jpeg", "webp", f"avif-e{effort}", *sweep]]
        chosen.sort(key=lambda e: (e.variant.format, e.variant.quality))
        label = {"auto": "JPEG", "webp": "WebP", "avif": "AVIF"}
        formats = {e.variant.name: label[e.variant.format] for e in chosen}
        columns = ["quality", "bytes vs JPEG", "SSIM mean", "SSIM min"]
        parts += [
            f"Quality sweep (AVIF at effort {effort}), the basis of the default qualities:",
            rows("format", formats, columns, "lrrrr"),
        ]
    parts.append(f"Measured {f.date} with libvips {f.libvips}.")
    return "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer efforts and encodes (docs/formats.md)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line last")
    parser.add_argument("--docs", type=Path, help="write the figures into DIR's docs")
    args = parser.parse_args()
    result = run(corpus.DEFAULT_OUT, QUICK if args.quick else FULL)
    text = markdown(result)
    print(text, file=sys.stderr if args.json else sys.stdout)
    if args.docs:
        for name, marks in BLOCKS.items():
            write_block(args.docs / name, text, *marks)
    if args.json:
        print(json.dumps(asdict(result)))


if __name__ == "__main__":
    main()
