"""Output formats on the bench corpus: JPEG, WebP and AVIF side by side, in one run.

    .venv/bin/python bench/formats.py                  (about 3 minutes; part of `make bench`)
    .venv/bin/python bench/formats.py --quick          (about 1 minute: fewer repeats, no sweep)
    .venv/bin/python bench/formats.py --docs docs/formats.md   (also rewrite the figures there)
    .venv/bin/python bench/formats.py --report --docs docs/formats.md   (from the last run's data)

Needs the corpus, wrk and nginx (`bench/setup.sh`). Two parts:

1. encode, in process. Each corpus photo is made into its 300x200 preview
   pixels once (libvips thumbnail, centre crop); every variant encodes those
   same pixels with `previewer.render.imaging.encode`, the function the service
   calls: JPEG, WebP and AVIF at the service's default qualities, AVIF at
   each effort in --efforts. Per photo and variant: the bytes, SSIM of the
   decoded result against the full-decode reference of bench/quality.py,
   and the median time of --repeats encodes. The variants take turns on each
   photo, so a busy machine slows them alike. --sweep adds WebP and AVIF
   at other qualities: how the defaults were chosen.
2. miss req/s, over HTTP. `previewer serve --webp --avif --gravity centre`
   behind wrk, every request a miss (a nonce per request), with the Accept
   header that picks each format: `*/*` (JPEG), WebP only, and AVIF at each
   effort in --http-efforts, each against a fresh server; the formats take
   turns within each of --reps repetitions.

Prints one JSON object, also kept in bench/.work/formats/results.json;
bench/formats_report.py renders it for docs/benchmarks.md and docs/formats.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import corpus
import formats_report
import peers
import pyvips
import quality
from load import measure
from writer import write_block

from previewer.config.settings import ImagingConfig
from previewer.render import imaging

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "formats"
WIDTH, HEIGHT = quality.WIDTH, quality.HEIGHT
DEFAULTS = ImagingConfig()
ACCEPT = {  # what a client sends to get each format from a service with --webp --avif
    "jpeg": "*/*",
    "webp": "image/webp,*/*;q=0.8",
    "avif": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
}


@dataclass(frozen=True)
class Variant:
    name: str  # "jpeg", "webp", "avif-e4", ...
    output_format: str  # "auto", "webp", "avif"
    quality: int
    effort: int = 0

    def job(self) -> imaging.RenderJob:
        return imaging.RenderJob(
            WIDTH, HEIGHT, "centre", self.quality, 10**9, self.output_format, self.effort
        )


def variants(efforts: list[int], sweep: bool) -> list[Variant]:
    out = [
        Variant("jpeg", "auto", DEFAULTS.quality),
        Variant("webp", "webp", DEFAULTS.webp_quality),
    ]
    out += [Variant(f"avif-e{e}", "avif", DEFAULTS.avif_quality, e) for e in efforts]
    if sweep:
        out += [
            Variant(f"webp-q{q}", "webp", q)
            for q in (70, 75, 76, 77, 80, 85)
            if q != DEFAULTS.webp_quality
        ]
        out += [
            Variant(f"avif-q{q}", "avif", q, DEFAULTS.avif_effort)
            for q in (50, 55, 58, 59, 62, 65, 70)
            if q != DEFAULTS.avif_quality
        ]
    return out


def _pixels(body: bytes) -> Any:
    """The preview's pixels before encoding: cover 300x200, centre crop, in memory."""
    image = pyvips.Image.thumbnail_buffer(body, WIDTH, height=HEIGHT, crop="centre")
    return image.copy_memory()


def encode_stage(photos: dict[str, bytes], chosen: list[Variant], repeats: int) -> dict[str, Any]:
    """Bytes, SSIM and encode time of every variant on every photo."""
    rows: dict[str, dict[str, dict[str, float]]] = {v.name: {} for v in chosen}
    ceiling: dict[str, float] = {}
    for index, (name, body) in enumerate(photos.items()):
        pixels = _pixels(body)
        reference = quality.covered_reference(body)
        ceiling[name] = quality.best_ssim(reference, quality.luma(pixels))
        times: dict[str, list[float]] = {v.name: [] for v in chosen}
        outputs: dict[str, bytes] = {}
        for rep in range(repeats):
            shift = (index + rep) % len(chosen)  # each variant leads in turn
            for variant in chosen[shift:] + chosen[:shift]:
                job = variant.job()
                started = time.perf_counter()
                out, _ = imaging.encode(pixels, job)
                times[variant.name].append((time.perf_counter() - started) * 1000)
                outputs[variant.name] = out
        for variant in chosen:
            out = outputs[variant.name]
            decoded = pyvips.Image.new_from_buffer(out, "")
            rows[variant.name][name] = {
                "bytes": len(out),
                "ssim": round(quality.best_ssim(reference, quality.luma(decoded)), 4),
                "encode_ms": round(statistics.median(times[variant.name]), 2),
            }
    summary = {}
    jpeg = rows["jpeg"]
    for variant in chosen:
        per = rows[variant.name]
        summary[variant.name] = {
            "format": variant.output_format,
            "quality": variant.quality,
            "effort": variant.effort,
            "bytes_total": sum(r["bytes"] for r in per.values()),
            "bytes_vs_jpeg_median": round(
                statistics.median(per[p]["bytes"] / jpeg[p]["bytes"] for p in per), 3
            ),
            "ssim_mean": round(statistics.mean(r["ssim"] for r in per.values()), 4),
            "ssim_min": min(r["ssim"] for r in per.values()),
            "encode_ms_median": round(statistics.median(r["encode_ms"] for r in per.values()), 2),
            "encode_vs_jpeg_median": round(
                statistics.median(per[p]["encode_ms"] / jpeg[p]["encode_ms"] for p in per), 1
            ),
        }
    return {
        "photos": len(photos),
        "repeats": repeats,
        "summary": summary,
        "per_photo": rows,
        "ssim_before_encoding_mean": round(statistics.mean(ceiling.values()), 4),
    }


def _check_format(url: str, path: str, accept: str, content_type: str) -> None:
    import urllib.request

    request = urllib.request.Request(url + path, headers={"Accept": accept})
    with urllib.request.urlopen(request, timeout=60) as resp:
        got = resp.headers["Content-Type"]
        vary = resp.headers.get("Vary")
    if got != content_type or vary != "Accept":
        raise RuntimeError(f"Accept {accept!r} gave {got} (Vary {vary}), not {content_type}")


def http_stage(
    corpus_dir: Path, files: list[str], efforts: list[int], reps: int, seconds: float, conc: int
) -> dict[str, Any]:
    """Miss req/s of each format, formats taking turns within each repetition."""
    WORK.mkdir(parents=True, exist_ok=True)
    origin = peers.start_origin(WORK / "origin", corpus_dir)
    origin_port = int(origin.url.rsplit(":", 1)[1])
    plan = [("jpeg", "image/jpeg", DEFAULTS.avif_effort), ("webp", "image/webp", 0)]
    plan += [(f"avif-e{e}", "image/avif", e) for e in efforts]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in plan}
    paths = [peers.PEERS["previewer-centre"].path(f, origin_port) for f in files]
    try:
        for rep in range(reps):
            for name, content_type, effort in plan[rep % len(plan) :] + plan[: rep % len(plan)]:
                fmt = name.split("-")[0]
                extra = ("--webp", "--avif", "--avif-effort", str(effort))
                server = peers.start_previewer(WORK, "centre", extra=extra, name=f"http-{name}")
                try:
                    _check_format(server.url, paths[0], ACCEPT[fmt], content_type)
                    result = measure(
                        peer=f"previewer-{name}",
                        path="miss",
                        rep=rep + 1,
                        url=server.url,
                        paths=paths,
                        concurrency=conc,
                        duration=seconds,
                        roots=server.roots,
                        origin_roots=origin.roots,
                        work=WORK,
                        nonce=uuid.uuid4().hex[:8],
                        headers=(f"Accept: {ACCEPT[fmt]}",),
                    )
                finally:
                    server.stop()
                runs[name].append(result.as_dict())
                print(
                    f"[formats] rep {rep + 1}: miss {name:8} {result.rps:7.1f} req/s "
                    f"p99 {result.p99_ms:7.0f} ms err {result.errors} "
                    f"other cpu {result.other_cpu_pct:.0f}%",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        origin.stop()
    summary = {
        name: {
            "rps_median": round(statistics.median(r["rps"] for r in rows), 2),
            "p99_ms_median": round(statistics.median(r["p99_ms"] for r in rows), 1),
            "errors": sum(r["errors"] for r in rows),
            "cpu_ms_per_request": round(
                statistics.median(r["cpu_ms_per_request"] for r in rows), 1
            ),
        }
        for name, rows in runs.items()
    }
    return {
        "concurrency": conc,
        "seconds": seconds,
        "reps": reps,
        "summary": summary,
        "runs": runs,
    }


def run(
    corpus_dir: Path,
    *,
    efforts: list[int],
    http_efforts: list[int],
    repeats: int,
    reps: int,
    seconds: float,
    conc: int,
    sweep: bool,
) -> dict[str, Any]:
    imaging.configure()  # the service's libvips set-up: op cache off, loaders locked
    pyvips.operation_block_set("VipsForeignLoadHeif", False)  # to decode AVIF results here
    photos = corpus.load(corpus_dir)
    bodies = {p.file: (corpus_dir / p.file).read_bytes() for p in photos}
    chosen = variants(sorted(set(efforts) | {DEFAULTS.avif_effort}), sweep)
    data: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "defaults": {
            "quality": DEFAULTS.quality,
            "webp_quality": DEFAULTS.webp_quality,
            "avif_quality": DEFAULTS.avif_quality,
            "avif_effort": DEFAULTS.avif_effort,
        },
    }
    print(f"[formats] encode: {len(chosen)} variants x {len(bodies)} photos", file=sys.stderr)
    data["encode"] = encode_stage(bodies, chosen, repeats)
    data["http"] = (
        http_stage(corpus_dir, list(bodies), http_efforts, reps, seconds, conc)
        if reps > 0
        else None
    )
    return data


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=corpus.DEFAULT_OUT)
    parser.add_argument("--efforts", default="0,1,2,3,4,6", help="AVIF efforts to encode at")
    parser.add_argument("--http-efforts", default="2,3,4", help="AVIF efforts for miss req/s")
    parser.add_argument("--repeats", type=int, default=5, help="encodes per photo and variant")
    parser.add_argument("--reps", type=int, default=3, help="miss req/s runs per format")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="efforts 2,3,4; 2 repeats; miss req/s of the default effort, 1 run of 6 s; no sweep",
    )
    parser.add_argument("--docs", type=Path, help="rewrite the figures in this Markdown file")
    parser.add_argument("--report", action="store_true", help="only render the last run's data")
    args = parser.parse_args()
    results = WORK / "results.json"
    if args.report:
        data = json.loads(results.read_text())
        if args.docs:
            write_block(args.docs, formats_report.markdown(data), *formats_report.MARKS)
        print(formats_report.markdown(data))
        return
    if args.quick:
        args.efforts, args.http_efforts = "2,3,4", str(DEFAULTS.avif_effort)
        args.repeats, args.reps, args.seconds, args.sweep = 2, 1, 6.0, False
    http_efforts = _ints(args.http_efforts) or [DEFAULTS.avif_effort]
    data = run(
        args.corpus,
        efforts=_ints(args.efforts),
        http_efforts=http_efforts,
        repeats=args.repeats,
        reps=args.reps,
        seconds=args.seconds,
        conc=args.concurrency,
        sweep=args.sweep,
    )
    print(json.dumps(data))
    WORK.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(data, indent=1) + "\n")
    if args.docs:
        write_block(args.docs, formats_report.markdown(data), *formats_report.MARKS)
    print(formats_report.markdown(data), file=sys.stderr)


if __name__ == "__main__":
    main()
