"""The Markdown of bench/formats.py's figures, for docs/benchmarks.md and docs/formats.md.

Standard library only, so that bench/report.py can render a saved run.
"""

from __future__ import annotations

import re
from typing import Any

MARKS = ("<!-- bench/formats.py: start -->", "<!-- bench/formats.py: end -->")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


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

    lines = [
        f"{enc['photos']} corpus photos, each made into its 300x200 preview (centre crop); "
        f"encode time is the median of {enc['repeats']} encodes of the same pixels, variants "
        "taking turns. SSIM is against the full-decode reference of bench/quality.py; the "
        f"pixels before encoding score {enc['ssim_before_encoding_mean']:.4f}, the ceiling. "
        "Bytes are the median over photos of each one's size relative to its JPEG.",
        "",
        _row(
            [
                "format (quality)",
                "bytes vs JPEG",
                "total bytes",
                "SSIM mean",
                "SSIM min",
                "encode ms",
                "encode vs JPEG",
                "CPU ms per miss",
                "miss cost vs JPEG",
            ]
        ),
        _row(["---"] + ["---:"] * 8),
    ]
    shown = [("jpeg", "JPEG"), ("webp", "WebP"), (f"avif-e{effort}", f"AVIF, effort {effort}")]
    for name, label in shown:
        s = summary.get(name)
        if s is None:
            continue
        lines.append(
            _row(
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
        )
    lines += [
        "",
        f"AVIF at q{data['defaults']['avif_quality']} by encoder effort (0 fastest, 9 "
        "smallest), same photos and run:",
        "",
        _row(
            [
                "effort",
                "bytes vs JPEG",
                "SSIM mean",
                "encode ms",
                "encode vs JPEG",
                "CPU ms per miss",
                "miss cost vs JPEG",
            ]
        ),
        _row(["---:"] * 7),
    ]
    for name, s in summary.items():
        match = re.fullmatch(r"avif-e(\d+)", name)
        if not match:
            continue
        lines.append(
            _row(
                [
                    match.group(1) + (" (default)" if int(match.group(1)) == effort else ""),
                    _pct_smaller(s["bytes_vs_jpeg_median"]),
                    f"{s['ssim_mean']:.4f}",
                    f"{s['encode_ms_median']:.1f}",
                    f"{s['encode_vs_jpeg_median']:.1f}x",
                    *miss_cost(name),
                ]
            )
        )
    if misses:
        h = data["http"]
        lines += [
            "",
            f"Misses over HTTP: wrk at {h['concurrency']} connections for {h['seconds']:g} s, "
            f"every request a miss, {h['reps']} runs per variant, the variants taking turns, "
            "each against a fresh `previewer serve --webp --avif --gravity centre` and the "
            "`Accept` that picks its format. *CPU ms per miss* is the server's own CPU time "
            "divided by the requests it answered (median of the runs): unlike req/s it "
            "hardly moves when other programs take the CPU, so *miss cost vs JPEG* is the "
            "ratio to trust; on a machine to itself, miss req/s is about the cores' CPU "
            "time divided by it.",
            "",
            _row(
                [
                    "variant",
                    "miss req/s",
                    "p99 ms",
                    "CPU ms per miss",
                    "vs JPEG",
                    "other programs' CPU",
                ]
            ),
            _row(["---"] + ["---:"] * 5),
        ]
        for name, row in misses.items():
            cost, ratio = miss_cost(name)
            lines.append(
                _row(
                    [
                        name,
                        f"{row['rps']:.1f}",
                        f"{row['p99_ms']:.0f}",
                        cost,
                        ratio,
                        f"{row['other_cpu_pct']:.0f}%",
                    ]
                )
            )
    sweep = [(n, s) for n, s in summary.items() if re.fullmatch(r"(webp|avif)-q\d+", n)]
    if sweep:
        base = [("jpeg", summary["jpeg"]), ("webp", summary["webp"])]
        base += [(f"avif-e{effort}", summary[f"avif-e{effort}"])]
        rows = sorted(base + sweep, key=lambda item: (item[1]["format"], item[1]["quality"]))
        lines += [
            "",
            f"Quality sweep (AVIF at effort {effort}), the basis of the default qualities:",
            "",
            _row(["format", "quality", "bytes vs JPEG", "SSIM mean", "SSIM min"]),
            _row(["---", "---:", "---:", "---:", "---:"]),
        ]
        for _, s in rows:
            fmt = {"auto": "JPEG", "webp": "WebP", "avif": "AVIF"}[s["format"]]
            lines.append(
                _row(
                    [
                        fmt,
                        str(s["quality"]),
                        "-" if s["format"] == "auto" else _pct_smaller(s["bytes_vs_jpeg_median"]),
                        f"{s['ssim_mean']:.4f}",
                        f"{s['ssim_min']:.4f}",
                    ]
                )
            )
    lines += ["", f"Measured {data['date']} with libvips {data['libvips']}."]
    return "\n".join(lines)
