"""The Markdown of bench/formats.py's figures, for docs/benchmarks.md and docs/formats.md.

Standard library only, so that bench/report.py can render a saved run.
"""

from __future__ import annotations

import re
from typing import Any

from writer import table as _table

MARKS = ("<!-- bench/formats.py: start -->", "<!-- bench/formats.py: end -->")


def _pct_smaller(ratio: float) -> str:
    return f"{(1 - ratio) * 100:.0f}% smaller" if ratio < 1 else f"{(ratio - 1) * 100:.0f}% larger"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _misses(data: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per HTTP variant: median req/s, p99 and server CPU ms per miss over its runs."""
    runs = (data.get("http") or {}).get("runs", {})
    return {
        name: {
            "rps": _median([r["rps"] for r in rows]),
            "p99_ms": _median([r["p99_ms"] for r in rows]),
            "cpu_ms": _median([r["cpu_ms_per_request"] for r in rows]),
            "other_cpu_pct": _median([r["other_cpu_pct"] for r in rows]),
        }
        for name, rows in runs.items()
        if rows
    }


def markdown(data: dict[str, Any]) -> str:
    """The figures as Markdown: formats at the defaults, misses, AVIF efforts, the sweep."""
    if "error" in data:
        return f"The formats measurement failed: {data['error']}"
    enc = data["encode"]
    summary = enc["summary"]
    misses = _misses(data)
    jpeg_cpu = misses.get("jpeg", {}).get("cpu_ms")
    effort = data["defaults"]["avif_effort"]

    def miss_cost(name: str) -> tuple[str, str]:
        row = misses.get(name)
        if row is None or not jpeg_cpu:
            return "-", "-"
        return f"{row['cpu_ms']:.0f}", f"{row['cpu_ms'] / jpeg_cpu:.2f}x"

    head = ["format (quality)", "bytes vs JPEG", "total bytes", "SSIM mean", "SSIM min"]
    head += ["encode ms", "encode vs JPEG", "CPU ms per miss", "miss cost vs JPEG"]
    body = []
    shown = [("jpeg", "JPEG"), ("webp", "WebP"), (f"avif-e{effort}", f"AVIF, effort {effort}")]
    for name, label in shown:
        s = summary.get(name)
        if s is not None:
            body.append(
                [
                    f"{label} (q{s['quality']})",
                    "-" if name == "jpeg" else _pct_smaller(s["bytes_vs_jpeg_median"]),
                    f"{s['bytes_total']:,}",
                    f"{s['ssim_mean']:.4f}",
                    f"{s['ssim_min']:.4f}",
                    f"{s['encode_ms_median']:.1f}",
                    f"{s['encode_vs_jpeg_median']:.1f}x",
                    *miss_cost(name),
                ]
            )
    parts = [
        f"{enc['photos']} corpus photos, {enc['repeats']} encodes each; the pixels before "
        f"encoding score SSIM {enc['ssim_before_encoding_mean']:.4f}, the ceiling.",
        _table(head, body, "l" + "r" * 8),
    ]
    body = []
    for name, s in summary.items():
        match = re.fullmatch(r"avif-e(\d+)", name)
        if match:
            body.append(
                [
                    match.group(1) + (" (default)" if int(match.group(1)) == effort else ""),
                    _pct_smaller(s["bytes_vs_jpeg_median"]),
                    f"{s['ssim_mean']:.4f}",
                    f"{s['encode_ms_median']:.1f}",
                    f"{s['encode_vs_jpeg_median']:.1f}x",
                    *miss_cost(name),
                ]
            )
    head = ["effort", "bytes vs JPEG", "SSIM mean", "encode ms", "encode vs JPEG"]
    parts += [
        f"AVIF at q{data['defaults']['avif_quality']} by encoder effort (0 fastest, 9 "
        "smallest), same photos and run:",
        _table([*head, "CPU ms per miss", "miss cost vs JPEG"], body, "r" * 7),
    ]
    if misses:
        h = data["http"]
        body = [
            [
                name,
                f"{r['rps']:.1f}",
                f"{r['p99_ms']:.0f}",
                *miss_cost(name),
                f"{r['other_cpu_pct']:.0f}%",
            ]
            for name, r in misses.items()
        ]
        head = ["variant", "miss req/s", "p99 ms", "CPU ms per miss", "vs JPEG"]
        parts += [
            f"Misses over HTTP: wrk at {h['concurrency']} connections for {h['seconds']:g} s, "
            f"{h['reps']} runs per variant:",
            _table([*head, "other programs' CPU"], body, "l" + "r" * 5),
        ]
    sweep = [(n, s) for n, s in summary.items() if re.fullmatch(r"(webp|avif)-q\d+", n)]
    if sweep:
        base = [("jpeg", summary["jpeg"]), ("webp", summary["webp"])]
        base += [(f"avif-e{effort}", summary[f"avif-e{effort}"])]
        rows = sorted(base + sweep, key=lambda item: (item[1]["format"], item[1]["quality"]))
        body = [
            [
                {"auto": "JPEG", "webp": "WebP", "avif": "AVIF"}[s["format"]],
                str(s["quality"]),
                "-" if s["format"] == "auto" else _pct_smaller(s["bytes_vs_jpeg_median"]),
                f"{s['ssim_mean']:.4f}",
                f"{s['ssim_min']:.4f}",
            ]
            for _, s in rows
        ]
        head = ["format", "quality", "bytes vs JPEG", "SSIM mean", "SSIM min"]
        parts += [
            f"Quality sweep (AVIF at effort {effort}), the basis of the default qualities:",
            _table(head, body, "lrrrr"),
        ]
    parts.append(f"Measured {data['date']} with libvips {data['libvips']}.")
    return "\n\n".join(parts)
