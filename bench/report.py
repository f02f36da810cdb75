"""docs/benchmarks.md's figures from one run's data; the prose around them is the doc's.

`write(data, docs)` puts each of `blocks(data)` between its markers in
docs/benchmarks.md (`<!-- make bench: NAME -->` ... `<!-- make bench: NAME end -->`):
the targets table (figures.py), medians with min-max spreads per peer, path and
concurrency, the in-process limit, quality, start-up, the stages' tables and the
profile; then draws the chart (chart.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import chart
import corpus
import fastpath
import fit_cost
import formats_report
import malloc_cost
import render_cost
import srcset
from figures import (
    Data,
    cores,
    inprocess_median,
    label,
    median,
    outcomes,
    rows,
    spread,
)
from peers import PEERS
from writer import table, write_block

HERE = Path(__file__).resolve().parent
# An earlier run's figures and hit-path profile, kept for the before/after section.
BASELINE = HERE / "baseline.json"
# The doc with its prose, copied into another BENCH_DOCS before its blocks are written.
TEMPLATE = HERE.parent / "docs" / "benchmarks.md"


def _results_table(data: Data) -> str:
    body = []
    for r in rows(data["results"]):
        body.append(
            [
                r.path,
                r.label,
                str(r.concurrency),
                spread(r.rps),
                spread(r.p50, 2),
                spread(r.p99, 2),
                str(r.errors),
                spread(r.rss, 0),
                spread(r.cpu_ms, 2),
                f"{max(r.other_cpu):.1f}",
            ]
        )
    header = ["path", "peer", "c", "req/s", "p50 ms", "p99 ms", "errors"]
    header += ["peak RSS MB", "CPU ms/req", "other CPU % (max)"]
    return table(header, body)


def _inprocess_table(data: Data) -> str:
    keys = list(data["inprocess"][0]["previews_per_second"]) if data["inprocess"] else []
    body = []
    for key in keys:
        engine, threads = key.rsplit("-", 1)
        values = [rep["previews_per_second"][key] for rep in data["inprocess"]]
        body.append([engine, threads.removesuffix("t"), spread(values)])
    return table(["engine", "threads", "previews/s"], body)


def _per_file_table(data: Data) -> str:
    per_file = data["inprocess"][0].get("per_file_ms") if data["inprocess"] else None
    if not per_file:
        return "(not measured)"
    photos = {p["file"]: p for p in data["corpus"]}
    engines = list(per_file)
    body = []
    for name in sorted(photos, key=lambda f: photos[f]["width"] * photos[f]["height"]):
        p = photos[name]
        cells = [name, f"{p['width']}x{p['height']}", "yes" if p["progressive"] else "no"]
        cells += [f"{per_file[e][name]:.1f}" for e in engines]
        body.append(cells)
    return table(["file", "size", "progressive", *(f"{e} ms" for e in engines)], body)


def _quality_table(data: Data) -> str:
    body = []
    order = {name: i for i, name in enumerate(PEERS)}
    for peer, q in sorted(data["quality"].items(), key=lambda item: order.get(item[0], 99)):
        worst = min(q["ssim"], key=q["ssim"].get) if q["ssim"] else None
        body.append(
            [
                label(peer),
                str(q["checked"]),
                str(len(q["problems"])),
                f"{q['ssim_mean']:.4f}" if q["ssim_mean"] is not None else "-",
                f"{q['ssim_min']:.4f} ({worst})" if worst else "-",
                f"{data['output_bytes'].get(peer, 0):,.0f}",
            ]
        )
    header = ["peer", "previews checked", "problems", "SSIM mean", "SSIM min (file)"]
    return table([*header, "mean preview bytes"], body)


def _experiments_table(data: Data) -> str:
    body = []
    for r in data.get("experiments", []):
        body.append(
            [
                r["variant"],
                f"{r['rps']:.1f}",
                f"{r['p99_ms']:.0f}",
                f"{r['peak_rss_mb']:.0f}",
                f"{r['cpu_ms_per_request']:.1f}",
                f"{r['other_cpu_pct']:.1f}",
            ]
        )
    header = ["previewer variant (miss, centre)", "req/s", "p99 ms", "peak RSS MB"]
    return table([*header, "CPU ms/req", "other CPU %"], body)


def _disturbed_text(data: Data) -> str:
    bound, retries = data["config"]["max_other_cpu"], data["config"]["retries"]
    runs = [*data["results"], *data["inprocess"], *data.get("experiments", [])]
    retried = sum(1 for r in runs if r.get("attempts", 1) > 1)
    still = [r for r in runs if r.get("other_cpu_pct", 0) > bound]
    text = f"Bound {bound:g}%, up to {retries} retries. In this run {retried} of {len(runs)} "
    text += "measurements were retried"
    if still:
        worst = max(r["other_cpu_pct"] for r in still)
        return f"{text}, and {len(still)} stayed above the bound (worst {worst:.0f}%)."
    return f"{text}; every kept measurement is under the bound."


def _stage(data: Data, name: str) -> dict[str, Any] | str:
    """An optional stage's figures, or what to print instead if it has none."""
    stage: dict[str, Any] | None = data.get(name)
    if not stage:
        return "Not measured in this run."
    if "error" in stage:
        return f"Failed: {stage['error']}"
    return stage


def _startup_text(data: Data) -> str:
    s = _stage(data, "startup")
    if isinstance(s, str):
        return s
    warm = ", ".join(f"{v:.2f}" for v in s["warm_seconds"])
    text = f"Over {s['entries']:,} entries: **{s['warm_median']:.2f} s** median with the page "
    text += f"cache warm (trials: {warm} s)"
    if s.get("cold_median") is not None:
        cold = ", ".join(f"{v:.2f}" for v in s["cold_seconds"])
        text += f", **{s['cold_median']:.2f} s** after dropping the page cache (trials: {cold} s)"
    text += ". Target: under 3 s."
    if s.get("warm_loaded_median") is not None:
        text += (
            f" Until the index was complete (and `/health` reported "
            f"{', '.join(map(str, s['entries_reported']))} entries): "
            f"{s['warm_loaded_median']:.2f} s warm"
        )
        if s.get("cold_loaded_median") is not None:
            text += f", {s['cold_loaded_median']:.2f} s cold"
        text += "."
    return text


def _engine_text(data: Data) -> str:
    """The engine decision (libvips or Pillow for JPEG sources), from this run's figures."""
    n = cores(data)
    mine = inprocess_median(data, f"previewer-{n}t")
    pillow = inprocess_median(data, f"pillow-{n}t")
    if not mine or not pillow:
        return "The engine comparison did not run."
    quality = data.get("quality", {})
    ssim_mine = (quality.get("previewer-centre") or {}).get("ssim_mean")
    ssim_pillow = (quality.get("pillow") or {}).get("ssim_mean")
    same = (
        f" at SSIM {ssim_mine:.4f} against Pillow's {ssim_pillow:.4f}"
        if ssim_mine is not None and ssim_pillow is not None
        else ""
    )
    verdict = "libvips is faster" if mine >= pillow else "**Pillow is faster** on this corpus"
    return (
        f"**Engine decision.** On {n} threads `previewer.render.imaging` renders {mine:.1f} "
        f"previews/s and Pillow {pillow:.1f}/s ({mine / pillow:.2f}x){same}: {verdict}."
    )


def _srcset_text(data: Data) -> str:
    s = _stage(data, "srcset")
    if isinstance(s, str):
        return s
    return (
        f"{len(s['sizes'])} sizes ({', '.join(s['sizes'])}) of each of the {s['photos']} "
        f"corpus photos ({s['bytes'] / 1e6:.1f} MB in all); median of {s['repeats']} "
        "passes.\n\n" + srcset.markdown(s)
    )


def _formats_text(data: Data) -> str:
    s = _stage(data, "formats")
    return s if isinstance(s, str) else formats_report.markdown(s)


def _fastpath_text(data: Data) -> str:
    s = _stage(data, "fastpath")
    return s if isinstance(s, str) else fastpath.markdown(s)


def _gravity_text(data: Data) -> str:
    s = _stage(data, "gravity_cost")
    if isinstance(s, str):
        return s
    return f"{s['repeat']} renders each.\n\n" + render_cost.markdown(s)


def _fit_text(data: Data) -> str:
    s = _stage(data, "fit_cost")
    if isinstance(s, str):
        return s
    return f"Target {s['target']}, {s['repeat']} renders each.\n\n" + fit_cost.markdown(s)


def _malloc_text(data: Data) -> str:
    s = _stage(data, "malloc_cost")
    if isinstance(s, str):
        return s
    head = f"{s['repeat']} renders each; transparent huge pages: `{s['thp']}`."
    return head + "\n\n" + malloc_cost.markdown(s)


def _baseline_text(data: Data) -> str:
    if not BASELINE.exists():
        return "No baseline (bench/baseline.json)."
    base = json.loads(BASELINE.read_text())
    thumbor_before = base.get("yardsticks", {}).get("thumbor", {})
    thumbor_now = {"miss": "thumbor", "hit": "thumbor-rs"}
    body = []
    for key, before in base["results"].items():
        path, peer, conc = key.split("/")
        now_rps = median(data, path, peer, int(conc))
        now_p99 = median(data, path, peer, int(conc), "p99_ms")
        if now_rps is None or now_p99 is None:
            continue
        then_t = thumbor_before.get(f"{path}/{conc}")
        now_t = median(data, path, thumbor_now[path], int(conc))
        body.append(
            [
                f"{path} c={conc}: {label(peer)}",
                f"{before['rps']:,.1f}",
                f"{now_rps:,.1f}",
                f"{before['rps'] / then_t:.2f}x" if then_t else "-",
                f"{now_rps / now_t:.2f}x" if now_t else "-",
                f"{before['p99_ms']:,.2f}",
                f"{now_p99:,.2f}",
            ]
        )
    n = cores(data)
    pace = ""
    then_v = base.get("yardsticks", {}).get("inprocess", {}).get(f"pyvips-{n}t")
    now_v = inprocess_median(data, f"pyvips-{n}t")
    if then_v and now_v:
        pace = (
            f" In-process pyvips render: {then_v:.1f} previews/s in that run, {now_v:.1f}/s "
            f"in this one ({now_v / then_v:.0%})."
        )
    parts = [
        f"Before: the run of {base['source']} ({base['date']}). {base['note']}{pace}",
        "",
        table(
            [
                "path: peer",
                "req/s before",
                "req/s now",
                "/ thumbor before",
                "/ thumbor now",
                "p99 ms before",
                "p99 ms now",
            ],
            body,
        ),
        "",
    ]
    for title, text in base.get("profiles", {}).items():
        parts += [f"#### {title}, before ({base['source']})", "", text, ""]
    return "\n".join(parts).strip()


def _machine_text(data: Data) -> str:
    m, v = data["machine"], data["versions"]
    lines = [
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']:.1f} GiB, "
        f"{m['os']}, Linux {m['kernel']}",
        f"- previewer {v['previewer']} at {v['previewer_source']}, Python {v['python']}, "
        f"aiohttp {v['aiohttp']}, pyvips {v['pyvips']}, libvips {v['libvips']}",
        f"- Pillow for the in-process comparison: {v['pillow']}",
        f"- thumbor {v['thumbor']} (Pillow {v['thumbor_pillow']}, Python {v['python']}), "
        f"{v['nginx']}, {v['wrk']}, py-spy {v['py_spy']}",
    ]
    return "\n".join(lines)


def _run_text(data: Data) -> str:
    cfg = data["config"]
    return (
        f"Generated by `make bench` on {data['date']} (the run took "
        f"{data['wall_minutes']:.0f} minutes). This run: `BENCH_REPS={cfg['reps']} "
        f"BENCH_DURATION={cfg['duration']:g} "
        f"BENCH_CONCURRENCY={','.join(map(str, cfg['concurrency']))} "
        f"BENCH_INPROCESS_SECONDS={cfg['inprocess_seconds']:g} "
        f"BENCH_STARTUP_ENTRIES={cfg['startup_entries']}`."
    )


def _failures_text(data: Data) -> str:
    if not data["failures"]:
        return "Every peer ran."
    lines = ["Peers that did not run:", ""]
    return "\n".join(lines + [f"- **{peer}**: {why}" for peer, why in data["failures"].items()])


def _load_text(data: Data) -> str:
    cfg = data["config"]
    head = f"Median over {cfg['reps']} repetitions of {cfg['duration']:g} s."
    return head + "\n\n" + _results_table(data)


def _inprocess_text(data: Data) -> str:
    head = f"N = {data['machine']['cores']} threads."
    return head + "\n\n" + _inprocess_table(data)


def _profiles_text(data: Data) -> str:
    parts = []
    for title, text in data.get("profiles", {}).items():
        parts += [f"### {title}", "", text, ""]
    return "\n".join(parts).strip() or "No profile in this run."


def _variants_text(data: Data) -> str:
    if not data.get("experiments"):
        return "No variants in this run."
    conc = max(data["config"]["concurrency"])
    return f"c={conc}.\n\n" + _experiments_table(data)


def _corpus_text(data: Data) -> str:
    photos = [corpus.Photo(**p) for p in data["corpus"]]
    progressive = sum(p.progressive for p in photos)
    big = sum(p.megapixels >= 12 for p in photos)
    head = f"{len(photos)} JPEGs, {progressive} progressive, {big} of 12 MP or more."
    return head + "\n\n" + corpus.markdown_table(photos)


def blocks(data: Data) -> dict[str, str]:
    """Each generated block of docs/benchmarks.md, by the name in its markers."""
    targets = [[o.what, o.measured, o.target, o.met] for o in outcomes(data)]
    return {
        "run": _run_text(data),
        "targets": table(["figure", "measured", "target", "met"], targets),
        "failures": _failures_text(data),
        "load": _load_text(data),
        "inprocess": _inprocess_text(data),
        "per-file": _per_file_table(data),
        "engine": _engine_text(data),
        "quality": _quality_table(data),
        "startup": _startup_text(data),
        "srcset": _srcset_text(data),
        "formats": _formats_text(data),
        "fastpath": _fastpath_text(data),
        "gravity": _gravity_text(data),
        "fit": _fit_text(data),
        "malloc": _malloc_text(data),
        "profiles": _profiles_text(data),
        "baseline": _baseline_text(data),
        "variants": _variants_text(data),
        "disturbance": _disturbed_text(data),
        "machine": _machine_text(data),
        "corpus": _corpus_text(data),
    }


def write(data: Data, docs: Path) -> tuple[Path, Path]:
    docs.mkdir(parents=True, exist_ok=True)
    md, png = docs / "benchmarks.md", docs / "benchmarks.png"
    if not md.exists() and TEMPLATE.exists():
        shutil.copyfile(TEMPLATE, md)
    for name, text in blocks(data).items():
        write_block(md, text, f"<!-- make bench: {name} -->", f"<!-- make bench: {name} end -->")
    chart.draw(data, png)
    return md, png
