"""docs/benchmarks.md from one run's data: the Markdown text around the tables.

`write(data, docs)` renders what `run.py` gathered: the targets table
(figures.py), medians with min-max spreads per peer, path and concurrency; the
in-process limit; quality, start-up and the profile; then the chart (chart.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chart
import corpus
import fastpath
import fit_cost
import formats_report
import malloc_cost
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
from writer import table as _table

# An earlier run's figures and hit-path profile, kept for the before/after section.
BASELINE = Path(__file__).resolve().parent / "baseline.json"


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
    return _table(header, body)


def _inprocess_table(data: Data) -> str:
    keys = list(data["inprocess"][0]["previews_per_second"]) if data["inprocess"] else []
    body = []
    for key in keys:
        engine, threads = key.rsplit("-", 1)
        values = [rep["previews_per_second"][key] for rep in data["inprocess"]]
        body.append([engine, threads.removesuffix("t"), spread(values)])
    return _table(["engine", "threads", "previews/s"], body)


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
    return _table(["file", "size", "progressive", *(f"{e} ms" for e in engines)], body)


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
    return _table([*header, "mean preview bytes"], body)


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
    return _table([*header, "CPU ms/req", "other CPU %"], body)


def _disturbed_text(data: Data) -> str:
    bound = data["config"]["max_other_cpu"]
    runs = [*data["results"], *data["inprocess"], *data.get("experiments", [])]
    retried = sum(1 for r in runs if r.get("attempts", 1) > 1)
    still = [r for r in runs if r.get("other_cpu_pct", 0) > bound]
    text = f"In this run {retried} of {len(runs)} measurements were retried"
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
    text = (
        f"`previewer serve` over a cache of {s['entries']:,} entries, from exec until "
        f"`/health` answers 200, that is serving, hits included (the index loads in the "
        f"background; until it has, a hit is read from disk directly): **{s['warm_median']:.2f} "
        f"s** median with the page cache warm (trials: "
        f"{', '.join(f'{v:.2f}' for v in s['warm_seconds'])} s)"
    )
    if s.get("cold_median") is not None:
        text += (
            f", **{s['cold_median']:.2f} s** after dropping the page cache "
            f"(trials: {', '.join(f'{v:.2f}' for v in s['cold_seconds'])} s)"
        )
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
    if mine >= pillow:
        verdict = (
            "previewer keeps libvips for every source, JPEG included: its own path "
            "(shrink-on-load, and a DC-only decode for large progressive JPEGs, see "
            "docs/imaging.md) is faster than tuned Pillow"
        )
    else:
        verdict = (
            "Pillow is faster on this corpus; by the rule set for this benchmark it should "
            "take over JPEG sources behind `previewer.imaging`"
        )
    return (
        f"**Engine decision.** On {n} threads `previewer.imaging` renders {mine:.1f} "
        f"previews/s and Pillow (JPEG `draft()` + `ImageOps.fit`, the fastest Pillow path, "
        f"`bench/pillow_limit.py`) {pillow:.1f}/s ({mine / pillow:.2f}x){same}. {verdict}."
    )


def _srcset_text(data: Data) -> str:
    s = _stage(data, "srcset")
    if isinstance(s, str):
        return s
    return (
        f"{len(s['sizes'])} sizes ({', '.join(s['sizes'])}) of each of the {s['photos']} "
        f"corpus photos ({s['bytes'] / 1e6:.1f} MB in all), requested one at a time, every "
        "one a miss, from a fresh previewer with the source cache at its default "
        "(a quarter of 1 GiB) and with `--source-cache-size 0`; median of "
        f"{s['repeats']} passes, interleaved (`bench/srcset.py`). Origin requests are "
        "counted from the origin's access log. The 20 Mbit/s origin is nginx with "
        "`limit_rate 2500k`, a stand-in for an origin across the internet (no added "
        "round-trip time, so still a cheap fetch).\n\n" + srcset.markdown(s)
    )


def _formats_text(data: Data) -> str:
    s = _stage(data, "formats")
    if isinstance(s, str):
        return s
    return (
        "Negotiated output (`--webp`, `--avif`; docs/formats.md) on the corpus, side by side "
        "in one run (`bench/formats.py`).\n\n" + formats_report.markdown(s)
    )


def _fastpath_text(data: Data) -> str:
    s = _stage(data, "fastpath")
    if isinstance(s, str):
        return f"The JPEG fast path: {s}"
    return (
        "Each corpus photo as a 300x200 centre fill, in process with `VIPS_CONCURRENCY=1`, "
        "best of three: a plain `thumbnail_buffer` against `previewer.imaging.render`, which "
        "decodes large progressive JPEGs from their DC coefficients alone (docs/imaging.md). "
        "SSIM against the full-decode reference of the quality check (`bench/fastpath.py`).\n\n"
        + fastpath.markdown(s)
    )


def _gravity_text(data: Data) -> str:
    s = _stage(data, "gravity_cost")
    if isinstance(s, str):
        return f"Gravity cost: {s}"
    gravities: list[str] = s["gravities"]
    body = []
    for row in s["rows"]:
        ms = [row["ms"][g] for g in gravities]
        body.append(
            [row["source"], row["target"], *(f"{m:.1f}" for m in ms), f"{ms[0] / ms[1]:.2f}"]
        )
    return (
        "Median milliseconds of one render by crop gravity, photo-like JPEG sources made by "
        f"the benchmark, {s['repeat']} renders each, `VIPS_CONCURRENCY=1` "
        "(`bench/render_cost.py`). The ratio is the first gravity's time over the second's.\n\n"
        + _table(["source", "target", *(f"{g} ms" for g in gravities), "ratio"], body)
    )


def _fit_text(data: Data) -> str:
    s = _stage(data, "fit_cost")
    if isinstance(s, str):
        return f"Fit against fill: {s}"
    return (
        f"Each corpus photo at {s['target']} as a fill (both gravities) and as a fit, in "
        "process with `VIPS_CONCURRENCY=1`, the three alternating render by render: median "
        f"CPU milliseconds of {s['repeat']} renders after a warm-up (`bench/fit_cost.py`). "
        "The last two lines are the misses per second one render thread sustains walking "
        "the corpus (photos over the sum of their medians), fetch and store aside: by CPU "
        "(per core) and by wall time.\n\n" + fit_cost.markdown(s)
    )


def _malloc_text(data: Data) -> str:
    s = _stage(data, "malloc_cost")
    if isinstance(s, str):
        return f"Malloc cost: {s}"
    return (
        "Each corpus photo as a 300x200 centre fill, in process with `VIPS_CONCURRENCY=1`, "
        f"under each glibc malloc setting in a process of its own: median CPU and minor page "
        f"faults of {s['repeat']} renders (`bench/malloc_cost.py`; transparent huge pages: "
        f"`{s['thp']}`). docs/performance.md explains the settings.\n\n" + malloc_cost.markdown(s)
    )


def _baseline_text(data: Data) -> list[str]:
    if not BASELINE.exists():
        return []
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
            f" The machine is shared: the same in-process pyvips render ran at {then_v:.1f} "
            f"previews/s in that run and {now_v:.1f}/s in this one ({now_v / then_v:.0%}), so "
            "raw rates from the two runs are not comparable; the ratios to thumbor, "
            "measured in the same run as each figure, are."
        )
    parts = [
        "### Before and after",
        "",
        f"Medians of the `make bench` run of {base['source']} ({base['date']}) against this "
        f"run, same harness and settings. {base['note']}{pace} The changes and their "
        "reasons: [performance.md](performance.md).",
        "",
        _table(
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
    return parts


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


def markdown(data: Data) -> str:
    cfg = data["config"]
    photos = [corpus.Photo(**p) for p in data["corpus"]]
    progressive = sum(p.progressive for p in photos)
    big = sum(p.megapixels >= 12 for p in photos)
    n = data["machine"]["cores"]
    parts = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` on {data['date']} (the run took {data['wall_minutes']:.0f} "
        "minutes); do not edit by hand. Every number below comes from that one run, on one "
        "machine, with every peer started by the harness on 127.0.0.1.",
        "",
        "Reproduce: `make bench` (installs wrk, nginx's image_filter module, the wallpaper "
        "packages and thumbor, then runs `bench/run.py`). Quick try: "
        "`BENCH_REPS=1 BENCH_DURATION=5 BENCH_INPROCESS_SECONDS=3 BENCH_STARTUP_ENTRIES=10000 "
        "make bench`.",
        f"This run: `BENCH_REPS={cfg['reps']} BENCH_DURATION={cfg['duration']:g} "
        f"BENCH_CONCURRENCY={','.join(map(str, cfg['concurrency']))} "
        f"BENCH_INPROCESS_SECONDS={cfg['inprocess_seconds']:g} "
        f"BENCH_STARTUP_ENTRIES={cfg['startup_entries']}`.",
        "",
        "![req/s and p99 per peer and path](benchmarks.png)",
        "",
        "## Targets",
        "",
        _table(
            ["figure", "measured", "target", "met"],
            [[o.what, o.measured, o.target, o.met] for o in outcomes(data)],
        ),
        "",
        "Ratios are of medians over the repetitions.",
    ]
    if data["failures"]:
        parts += ["", "## Peers that did not run", ""]
        parts += [f"- **{peer}**: {why}" for peer, why in data["failures"].items()]
    parts += [
        "",
        "## Load results",
        "",
        f"Median over {cfg['reps']} repetitions of {cfg['duration']:g} s (min-max in "
        "brackets); wrk with one thread per core, each connection cycling through the "
        "corpus.",
        "",
        _results_table(data),
        "",
        "- **errors**: non-2xx answers plus socket errors and timeouts, summed over the "
        "repetitions.",
        "- **peak RSS**: the largest sum of VmRSS over the server's whole process tree "
        "(thumbor: its processes and the nginx in front of them; nginx: master and workers), "
        "sampled every 100 ms.",
        "- **CPU ms/req**: utime + stime of that tree over the run, per request answered.",
        "- **other CPU**: CPU time the rest of the machine used during the run (not the "
        "server, the origin, wrk or the driver), as a share of all cores; more than a few "
        "percent means something else disturbed the run.",
        "",
        "## In-process limit",
        "",
        "Previews per second rendering the corpus from memory, no HTTP "
        "(`bench/inprocess.py`): `pyvips` is `thumbnail_buffer(body, 300, height=200, "
        "crop='centre')` + `jpegsave_buffer(Q=80, optimize_coding=True, keep='none')`; "
        "`previewer` is `previewer.imaging.render` with gravity centre, the engine the "
        f"service runs. N = {n} threads of a `ThreadPoolExecutor`; the libvips operation "
        "cache is off.",
        "",
        _inprocess_table(data),
        "",
        "One render of each file on one thread (median of 3, milliseconds):",
        "",
        _per_file_table(data),
        "",
        _engine_text(data),
        "",
        "## Quality",
        "",
        "Each peer's preview of every corpus file was fetched before the load and checked "
        "to decode as a 300x200 JPEG (`bench/quality.py`). For the peers that crop at the "
        "centre, SSIM on luma (11x11 Gaussian window) against a reference made from the "
        "full-size decode, resized with lanczos3 to cover 300x200 and centre-cropped; best "
        "of the crops shifted by up to one pixel, since peers round the crop box "
        "differently. 1.0 is identical.",
        "",
        _quality_table(data),
        "",
        "## Start-up",
        "",
        _startup_text(data),
        "",
        "## Second size of the same source (srcset)",
        "",
        _srcset_text(data),
        "",
        "## Output formats: JPEG, WebP and AVIF",
        "",
        _formats_text(data),
        "",
        "## One render on one thread",
        "",
        _fastpath_text(data),
        "",
        _gravity_text(data),
        "",
        _fit_text(data),
        "",
        _malloc_text(data),
        "",
    ]
    parts += _profile_sections(data)
    parts += [
        "## How it was measured",
        "",
        "- **origin**: nginx serving the corpus from disk (page cache), shared by all peers.",
        f"- **thumbor**: {n} processes (one per core) behind an nginx upstream "
        "(`least_conn`, keep-alive), `STORAGE = no_storage`, no result storage, "
        "`/unsafe/300x200/<origin>/<file>`, pycurl loader, otherwise thumbor's defaults "
        "(PIL engine, quality 80, progressive output). **thumbor + result storage** is the "
        "same with `thumbor.result_storages.file_storage` (unsafe URLs stored).",
        f"- **nginx image_filter**: {n} single-worker nginx (one per core) behind the same "
        "kind of balancer as thumbor, each with `proxy_pass` to the origin, `image_filter "
        "crop 300 200`, `image_filter_buffer 64M`, `image_filter_jpeg_quality 80`. (wrk's 4 "
        "connections, left to the kernel, can all land on one worker.)",
        "- **nginx static**: one preview of about 20 KB (previewer's own output for one "
        "corpus file) as a static file, `sendfile on`, access log off.",
        "- **previewer**: `.venv/bin/previewer serve --allow-private-networks --cache-dir "
        "<empty dir> --gravity attention|centre`, otherwise its defaults (render threads = "
        "cores, access log at info to a file).",
        "- **miss path**: every request carries a query string no other request had "
        "(`?r=<run>-<thread>-<n>`, see `bench/cycle.lua`); origins ignore it, and it makes "
        "the request its own cache key, so previewer fetches, renders and stores every one "
        "and no two concurrent requests share a render. thumbor and image_filter store "
        "nothing. Each run starts the peer fresh and warms it with one pass over the corpus.",
        "- **hit path**: the peer is started fresh, every corpus preview is requested twice "
        "(previewer's second answer must say `X-Cache: HIT`), then wrk cycles through the "
        "same URLs.",
        "- Within each repetition every peer runs in turn, at each concurrency; the "
        "in-process limit runs once per repetition too.",
        f"- **disturbance**: a run during which other programs used more than "
        f"{cfg['max_other_cpu']:g}% of the machine's CPU is taken again after a pause, up "
        f"to {cfg['retries']} times, and the least disturbed try is kept. "
        f"{_disturbed_text(data)}",
        "",
        "## Machine and versions",
        "",
        _machine_text(data),
        "",
        "## Corpus",
        "",
        f"{len(photos)} JPEGs from the Debian packages lomiri-wallpapers, mate-backgrounds "
        f"and plasma-workspace-wallpapers ({progressive} progressive, {big} of 12 MP or "
        "more), chosen in `bench/corpus.py`, copied to `bench/.work/corpus/` with a "
        "`manifest.json`; never committed.",
        "",
        corpus.markdown_table(photos),
        "",
    ]
    return "\n".join(parts)


def _profile_sections(data: Data) -> list[str]:
    parts = ["## Where the time goes", ""]
    profiles = data.get("profiles", {})
    if not profiles:
        return [*parts, "No profile in this run.", ""]
    parts += [
        "py-spy (`--nonblocking`, 100 Hz, Python frames) on previewer during a run of the "
        "stated kind; the run's own figures are perturbed by the sampling and are not in "
        "the tables above. libvips does its pixel work on its own worker threads, which run "
        "no Python: those samples have no frame to name. An executor thread's sample that "
        "ends in a pyvips call is libvips working on that thread.",
        "",
    ]
    for title, text in profiles.items():
        parts += [f"### {title}", "", text, ""]
    parts += _baseline_text(data)
    if data.get("experiments"):
        parts += [
            "### Variants of previewer on the miss path",
            "",
            f"One run each, c={max(data['config']['concurrency'])}, gravity centre, "
            "same method as above; for the profile's questions, not tuned defaults.",
            "",
            _experiments_table(data),
            "",
        ]
    return parts


def write(data: Data, docs: Path) -> tuple[Path, Path]:
    docs.mkdir(parents=True, exist_ok=True)
    md, png = docs / "benchmarks.md", docs / "benchmarks.png"
    md.write_text(markdown(data))
    chart.draw(data, png)
    return md, png
