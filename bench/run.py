"""Benchmark driver: previewer against thumbor and nginx, in one run.

    .venv/bin/python bench/run.py          (`make bench` runs bench/setup.sh first)
    .venv/bin/python bench/run.py --report (rewrite the docs from the last run's data)

Stages, all on 127.0.0.1, every server started and stopped here:

1. corpus: copy the photos from the wallpaper packages (bench/corpus.py);
2. check: start each peer once and fetch its preview of every corpus file;
   `bench/quality.py` checks each is a 300x200 JPEG and scores SSIM. A peer
   that cannot start or fails the check is left out, with the reason;
3. load: per repetition, the in-process limit (`bench/inprocess.py`), then
   every peer in turn on the miss and the hit path at each concurrency, each
   run against a freshly started server (bench/load.py measures it);
4. start-up over 100,000 cache entries (`bench/startup.py`);
5. srcset: four sizes of every corpus photo, with and without the source
   cache, from a loopback and a 20 Mbit/s origin (`bench/srcset.py`);
   formats: JPEG, WebP and AVIF (at several encoder efforts) side by side:
   bytes, SSIM, encode time and CPU per miss (`bench/formats.py`);
6. render: one thread, no HTTP: each corpus photo by a plain libvips
   thumbnail and by previewer's path (`bench/fastpath.py`), the cost of
   each crop gravity (`bench/render_cost.py`), and fit against fill
   (`bench/fit_cost.py`);
7. warm: `previewer warm` against wrk on previewer's hit path, side by side
   (`bench/warmspeed.py`; its figures go into results.json as `warm_vs_wrk`);
   metrics: the hit path with the Prometheus metrics on against off, side by
   side (`bench/metrics_cost.py`; results.json `metrics_cost`);
   protections: the hit path with the slow-client protections on (the
   defaults) against off, side by side (`bench/protection_cost.py`;
   results.json `protection_cost`, its table in docs/performance.md);
8. profile: py-spy on previewer under load, and a few previewer variants;
9. report: docs/benchmarks.md, docs/benchmarks.png and bench/.work/results.json,
   and the targets table on stdout.

Settings come from the environment (defaults in brackets): BENCH_REPS [3],
BENCH_DURATION seconds per load run [20], BENCH_CONCURRENCY [4,16],
BENCH_PEERS (a comma-separated subset of peers) [all], BENCH_INPROCESS_SECONDS
[10], BENCH_STARTUP_ENTRIES [100000, 0 skips], BENCH_SRCSET [1], BENCH_FORMATS [1],
BENCH_RENDER [1], BENCH_CROPS [1], BENCH_WARM [1], BENCH_METRICS [1],
BENCH_PROTECTIONS [1], BENCH_PROFILE [1], BENCH_EXPERIMENTS [1],
BENCH_DOCS (output directory) [docs],
BENCH_MAX_OTHER_CPU [10] and BENCH_RETRIES [2]: a measurement during which
other programs used more than that share (%) of the machine's CPU is taken
again, after a pause, up to that many times; the least disturbed one is kept.
BENCH_ONLY=protections runs the protections stage alone (no corpus, no peers,
a few minutes) and writes only its table; BENCH_ONLY=crops likewise runs the
crops stage alone (`make bench-crops`, about ten minutes).

The driver itself uses the standard library, psutil and matplotlib; the
stages that need libvips run as child processes of the same Python.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import json
import os
import shutil
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import corpus
import figures
import hotspots
import peers
import report
import srcset
from checks import check_peers, pillow_inprocess, warm
from load import Result, measure
from machine import machine, snapshot_previewer, versions
from procs import OtherCpu, Server, get, python_json

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RUN = WORK / "run"


@dataclass(frozen=True)
class Config:
    reps: int
    duration: float
    concurrency: list[int]
    peers: list[str]
    inprocess_seconds: float
    startup_entries: int
    srcset: bool
    formats: bool
    render: bool
    crops: bool
    warm: bool
    metrics: bool
    protections: bool
    only: str  # "": every stage; "protections" or "crops": that stage alone
    profile: bool
    experiments: bool
    docs: Path
    max_other_cpu: float
    retries: int

    @classmethod
    def from_env(cls, environ: dict[str, str]) -> Config:
        def flag(name: str, default: str) -> bool:
            return environ.get(name, default).lower() in ("1", "true", "yes", "on")

        names = [p for p in environ.get("BENCH_PEERS", ",".join(peers.PEERS)).split(",") if p]
        unknown = sorted(set(names) - set(peers.PEERS))
        if unknown:
            raise SystemExit(f"BENCH_PEERS: unknown peers {unknown}; known: {list(peers.PEERS)}")
        only = environ.get("BENCH_ONLY", "")
        if only not in ("", "protections", "crops"):
            raise SystemExit(f"BENCH_ONLY: unknown stage {only!r}; known: protections, crops")
        return cls(
            reps=int(environ.get("BENCH_REPS", "3")),
            duration=float(environ.get("BENCH_DURATION", "20")),
            concurrency=[int(c) for c in environ.get("BENCH_CONCURRENCY", "4,16").split(",")],
            peers=names,
            inprocess_seconds=float(environ.get("BENCH_INPROCESS_SECONDS", "10")),
            startup_entries=int(environ.get("BENCH_STARTUP_ENTRIES", "100000")),
            srcset=flag("BENCH_SRCSET", "1"),
            formats=flag("BENCH_FORMATS", "1"),
            render=flag("BENCH_RENDER", "1"),
            crops=flag("BENCH_CROPS", "1"),
            warm=flag("BENCH_WARM", "1"),
            metrics=flag("BENCH_METRICS", "1"),
            protections=flag("BENCH_PROTECTIONS", "1"),
            only=only,
            profile=flag("BENCH_PROFILE", "1"),
            experiments=flag("BENCH_EXPERIMENTS", "1"),
            docs=Path(environ.get("BENCH_DOCS", str(HERE.parent / "docs"))),
            max_other_cpu=float(environ.get("BENCH_MAX_OTHER_CPU", "10")),
            retries=int(environ.get("BENCH_RETRIES", "2")),
        )


def log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", flush=True)


def steady(cfg: Config, what: str, attempt: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Measure until other programs leave the CPU alone, or the retries run out.

    `attempt` returns a dict with `other_cpu_pct`; the least disturbed try is
    kept, with the number of tries in `attempts`.
    """
    best: dict[str, Any] | None = None
    for tries in range(1, cfg.retries + 2):
        row = attempt()
        row["attempts"] = tries
        if best is None or row["other_cpu_pct"] < best["other_cpu_pct"]:
            best = row
        if row["other_cpu_pct"] <= cfg.max_other_cpu or tries > cfg.retries:
            break
        log(f"{what}: other programs took {row['other_cpu_pct']:.0f}% of the CPU; again in 20 s")
        time.sleep(20)
    assert best is not None
    return best


def child(script: str, args: list[str], timeout: float, **env: str) -> dict[str, Any]:
    """A stage run as a child Python that prints one JSON object; its error if it fails."""
    try:
        found: dict[str, Any] = python_json([str(HERE / script), *args], timeout, env=env or None)
    except Exception as exc:  # one failed stage must not lose the others
        return {"error": str(exc)}
    return found


# --- load ---------------------------------------------------------------------------


def _counters(server: Server, peer: peers.Peer) -> dict[str, int]:
    if not peer.name.startswith("previewer"):
        return {}
    _, _, body = get(server.url + "/health")
    counters: dict[str, int] = json.loads(body).get("counters", {})
    return counters


def one_run(
    cfg: Config,
    peer: peers.Peer,
    path: str,
    conc: int,
    rep: int,
    files: list[str],
    origin: Server,
    origin_port: int,
    start: Callable[[], Server] | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Start the peer afresh, warm it, load it with wrk, stop it; the run's figures.

    `start` replaces the peer's own start (previewer variants); with `profile`,
    py-spy records the server into that file during the load.
    """
    server = start() if start else peer.start(RUN, origin_port)
    try:
        warm(server, peer, files, origin_port, hit=path == "hit")
        before = _counters(server, peer)
        outcome: list[Result] = []

        def load() -> None:
            outcome.append(
                measure(
                    peer=peer.name,
                    path=path,
                    rep=rep,
                    url=server.url,
                    paths=[peer.path(f, origin_port) for f in files],
                    concurrency=conc,
                    duration=cfg.duration,
                    roots=server.roots,
                    origin_roots=origin.roots,
                    work=RUN,
                    nonce=uuid.uuid4().hex[:8] if path == "miss" else None,
                )
            )

        if profile is None:
            load()
        else:
            loader = threading.Thread(target=load)
            loader.start()
            settle = min(2.0, cfg.duration / 4)
            time.sleep(settle)
            hotspots.record(server.roots[0], max(1.0, cfg.duration - 2 * settle), profile)
            loader.join()
        if not outcome:
            raise RuntimeError("the load run failed; see the log above")
        after = _counters(server, peer)
    finally:
        server.stop()
    row = outcome[0].as_dict()
    row["counters"] = {k: after[k] - before.get(k, 0) for k in after}
    return row


def load_stage(
    cfg: Config, files: list[str], failures: dict[str, str], origin: Server, origin_port: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every repetition: the in-process limit, then each peer on each path and concurrency."""
    results: list[dict[str, Any]] = []
    inprocess: list[dict[str, Any]] = []
    for rep in range(1, cfg.reps + 1):
        log(f"rep {rep}/{cfg.reps}: in-process limit")
        argv = [str(HERE / "inprocess.py"), str(corpus.DEFAULT_OUT), f"{cfg.inprocess_seconds:g}"]

        def limits(argv: list[str] = argv, rep: int = rep) -> dict[str, Any]:
            with OtherCpu() as other:
                limit = python_json(argv + (["--per-file"] if rep == 1 else []), 1800)
                pillow = pillow_inprocess(cfg.inprocess_seconds, RUN / "pillow-out")
            if pillow is not None:
                limit["previews_per_second"].update(pillow["previews_per_second"])
                if limit.get("per_file_ms"):
                    limit["per_file_ms"].update(pillow["per_file_ms"])
                limit["pillow"] = f"{pillow['pillow']} (libjpeg-turbo {pillow['libjpeg']})"
            limit["other_cpu_pct"] = round(other.percent, 1)
            return limit

        inprocess.append(steady(cfg, f"rep {rep}: in-process limit", limits))
        log(f"  {inprocess[-1]['previews_per_second']}")
        for path, names in (("miss", peers.MISS_PEERS), ("hit", peers.HIT_PEERS)):
            for name in names:
                if name not in cfg.peers or name in failures:
                    continue
                for conc in cfg.concurrency:
                    peer = peers.PEERS[name]
                    what = f"rep {rep}: {path} {name} c={conc}"
                    try:
                        row = steady(
                            cfg,
                            what,
                            functools.partial(
                                one_run, cfg, peer, path, conc, rep, files, origin, origin_port
                            ),
                        )
                    except Exception as exc:  # one broken run must not lose the others
                        failures[f"{name} {path} c={conc} rep {rep}"] = str(exc)
                        log(f"rep {rep}: {name} {path} c={conc} FAILED: {exc}")
                        continue
                    results.append(row)
                    log(
                        f"rep {rep}: {path:4} {name:20} c={conc:<3} {row['rps']:10.1f} req/s "
                        f"p99 {row['p99_ms']:8.1f} ms  rss {row['peak_rss_mb']:6.0f} MB  "
                        f"err {row['errors']}  other cpu {row['other_cpu_pct']:.1f}%"
                    )
    return results, inprocess


# --- profile and variants -----------------------------------------------------------

VARIANTS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("defaults (--workers = cores)", (), {}),
    ("VIPS_CONCURRENCY=1", (), {"VIPS_CONCURRENCY": "1"}),
    ("--workers 1", ("--workers", "1"), {}),
    ("--workers 4", ("--workers", "4"), {}),
    ("--workers 4, VIPS_CONCURRENCY=1", ("--workers", "4"), {"VIPS_CONCURRENCY": "1"}),
    ("--log-level warning", ("--log-level", "warning"), {}),
    ("--source-cache-size 0", ("--source-cache-size", "0"), {}),
    (
        "without huge pages: GLIBC_TUNABLES of arena_max=2, mmap_threshold=1048576",
        (),
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=1048576"},
    ),
    (
        "MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=33554432",
        (),
        {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(32 << 20)},
    ),
)


def profile_stage(
    cfg: Config, files: list[str], origin: Server, origin_port: int
) -> dict[str, str]:
    conc = max(cfg.concurrency)
    plan = (
        (f"Miss path, gravity centre, c={conc}", "previewer-centre", "miss"),
        (f"Miss path, gravity attention, c={conc}", "previewer-attention", "miss"),
        (f"Hit path, c={conc}", "previewer-attention", "hit"),
    )
    out = {}
    for title, name, path in plan:
        log(f"profile: {title}")
        raw = WORK / f"profile-{name}-{path}.txt"
        try:
            row = one_run(
                cfg, peers.PEERS[name], path, conc, 0, files, origin, origin_port, profile=raw
            )
        except Exception as exc:
            out[title] = f"Failed: {exc}"
            continue
        text = hotspots.markdown(hotspots.summarise(raw))
        out[title] = f"{text} The profiled run served {row['rps']:,.1f} req/s."
    return out


def experiment_stage(
    cfg: Config, files: list[str], origin: Server, origin_port: int
) -> list[dict[str, Any]]:
    conc = max(cfg.concurrency)
    peer = peers.PEERS["previewer-centre"]
    rows = []
    for i, (variant, extra, env) in enumerate(VARIANTS):
        log(f"variant: {variant}")

        def start(extra: tuple[str, ...] = extra, env: dict[str, str] = env, i: int = i) -> Server:
            return peers.start_previewer(RUN, "centre", extra, env, name=f"variant-{i}")

        try:
            row = steady(
                cfg,
                f"variant {variant}",
                functools.partial(
                    one_run, cfg, peer, "miss", conc, 0, files, origin, origin_port, start=start
                ),
            )
        except Exception as exc:
            log(f"variant {variant} failed: {exc}")
            continue
        row["variant"] = variant
        rows.append(row)
        log(f"  {row['rps']:.1f} req/s, p99 {row['p99_ms']:.0f} ms")
    return rows


def protections_stage(cfg: Config) -> dict[str, Any]:
    """The hit path with the slow-client protections on against off; writes its table."""
    log("protections: the hit path with the slow-client protections on against off")
    args = ["--duration", f"{cfg.duration:g}", "--reps", str(max(cfg.reps, 5))]
    args += ["--concurrency", str(max(cfg.concurrency)), "--json"]
    found = child("protection_cost.py", [*args, "--report", str(cfg.docs / "performance.md")], 3600)
    if "error" in found:
        log(f"  failed: {found['error']}")
        return found
    per_rep = ", ".join(str(r["ratio"]) for r in found["reps"])
    log(
        f"  on {found['on_rps_median']:,.0f} req/s, off {found['off_rps_median']:,.0f} req/s: "
        f"ratio on/off {found['ratio_median']:.3f} (per round {per_rep}; target ≥ "
        f"{found['target']:g}); table in {cfg.docs / 'performance.md'}"
    )
    return found


def crops_stage(cfg: Config) -> dict[str, Any]:
    """Each gravity's previews of the labelled photo set; writes its table and pictures."""
    log("crops: faces kept by each gravity, CPU per render, stability across encodings")
    args = ["--json", "--report", str(cfg.docs / "imaging.md")]
    found = child("crops.py", [*args, "--figure", str(cfg.docs / "crops-faces.png")], 3600)
    if "error" in found:
        log(f"  failed: {found['error']}")
        return found
    for gravity, row in found["gravities"].items():
        log(
            f"  {gravity:15} faces kept {row['faces_kept'] * 100:5.1f}%  all kept "
            f"{row['previews_all_kept'] * 100:5.1f}%  CPU {row['cpu_ms_per_render']:5.1f} ms/render"
            f"  stable {row['stable'] * 100:5.1f}%  no-face moved {row['no_face_windows_moved']}"
        )
    log(f"  ceiling: faces kept {found['ceiling']['faces_kept'] * 100:.1f}%")
    return found


# --- one render, in process -----------------------------------------------------------


def render_stage() -> dict[str, Any]:
    """One thread, no HTTP: plain thumbnail against previewer's path, gravity, fit and
    malloc cost."""
    photos = [str(corpus.DEFAULT_OUT), "--json"]
    stages = {
        "fastpath": ("fastpath.py", photos),
        "gravity_cost": ("render_cost.py", ["--json"]),
        "fit_cost": ("fit_cost.py", photos),
        "malloc_cost": ("malloc_cost.py", photos),
    }
    found: dict[str, Any] = {}
    for name, (script, args) in stages.items():
        log(f"render: {name} on one thread")
        found[name] = child(script, args, 1800, VIPS_CONCURRENCY="1")
    return found


# --- main -----------------------------------------------------------------------------


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write_report(data: dict[str, Any], docs: Path) -> None:
    md, png = report.write(data, docs)
    print()
    for o in figures.outcomes(data):
        print(f"{o.what:75} {o.measured:>10}  target {o.target:>14}  met: {o.met}")
    log(f"wrote {md}, {png} and {WORK / 'results.json'}")


def main() -> None:
    if sys.argv[1:] == ["--report"]:
        docs = Config.from_env(dict(os.environ)).docs
        write_report(json.loads((WORK / "results.json").read_text()), docs)
        return
    # servers are stopped in `finally` blocks: let SIGTERM and SIGINT reach them
    # (a shell starts background jobs with SIGINT ignored)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cfg = Config.from_env(dict(os.environ))
    WORK.mkdir(parents=True, exist_ok=True)
    lock = open(WORK / "run.lock", "w")  # noqa: SIM115  (held until the process exits)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench run is in progress (bench/.work/run.lock)") from None
    if cfg.only == "protections":
        found = protections_stage(cfg)
        (WORK / "protection_cost.json").write_text(json.dumps(found, indent=1) + "\n")
        raise SystemExit(1 if "error" in found else 0)
    if cfg.only == "crops":
        found = crops_stage(cfg)
        (WORK / "crops.json").write_text(json.dumps(found, indent=1) + "\n")
        raise SystemExit(1 if "error" in found else 0)
    started = time.monotonic()
    shutil.rmtree(RUN, ignore_errors=True)
    RUN.mkdir(parents=True)
    photos = corpus.build()
    files = [p.file for p in photos]
    source = snapshot_previewer(RUN)
    log(f"previewer under test: {source}")
    log(f"corpus: {len(files)} files in {corpus.DEFAULT_OUT}")
    origin = peers.start_origin(RUN / "origin", corpus.DEFAULT_OUT)
    origin_port = int(origin.url.rsplit(":", 1)[1])
    data: dict[str, Any] = {"profiles": {}, "experiments": [], "startup": None, "srcset": None}
    data.update(fastpath=None, gravity_cost=None, formats=None)
    try:
        failures, quality, sizes = check_peers(cfg.peers, files, RUN, origin_port, log)
        for name, why in failures.items():
            log(f"left out: {name}: {why}")
        results, inprocess = load_stage(cfg, files, failures, origin, origin_port)
        if cfg.startup_entries:
            log(f"start-up over {cfg.startup_entries} entries")
            args = [str(WORK), "--entries", str(cfg.startup_entries)]
            data["startup"] = child("startup.py", args, 1800)
            log(f"  {data['startup']}")
        if cfg.srcset:
            log("srcset: four sizes of each photo, with and without the source cache")
            try:
                data["srcset"] = srcset.measure(corpus.DEFAULT_OUT)
            except Exception as exc:
                data["srcset"] = {"error": str(exc)}
            log(f"  {data['srcset']}")
        if cfg.formats:
            log("formats: JPEG, WebP and AVIF side by side")
            data["formats"] = child("formats.py", [], 3600)
        if cfg.render:
            data.update(render_stage())
        if cfg.crops:
            data["crops"] = crops_stage(cfg)
        if cfg.warm:
            log("warm: previewer warm against wrk on the hit path")
            args = ["--duration", f"{cfg.duration:g}", "--reps", str(cfg.reps)]
            args += ["--concurrency", str(max(cfg.concurrency)), "--json"]
            data["warm_vs_wrk"] = child("warmspeed.py", args, 3600)
            log(f"  ratio warm/wrk {data['warm_vs_wrk'].get('ratio_median')}")
        if cfg.metrics:
            log("metrics: the hit path with metrics on against off")
            args = ["--duration", f"{cfg.duration:g}", "--reps", str(max(cfg.reps, 5))]
            args += ["--concurrency", str(max(cfg.concurrency)), "--json"]
            data["metrics_cost"] = child("metrics_cost.py", args, 3600)
            log(f"  ratio on/off {data['metrics_cost'].get('ratio_median')}")
        if cfg.protections:
            data["protection_cost"] = protections_stage(cfg)
        if cfg.profile and "previewer-centre" in cfg.peers:
            data["profiles"] = profile_stage(cfg, files, origin, origin_port)
        if cfg.experiments and "previewer-centre" in cfg.peers:
            data["experiments"] = experiment_stage(cfg, files, origin, origin_port)
    finally:
        origin.stop()
    data.update(
        date=datetime.date.today().isoformat(),
        wall_minutes=(time.monotonic() - started) / 60,
        config={
            "reps": cfg.reps,
            "duration": cfg.duration,
            "concurrency": cfg.concurrency,
            "peers": cfg.peers,
            "inprocess_seconds": cfg.inprocess_seconds,
            "startup_entries": cfg.startup_entries,
            "max_other_cpu": cfg.max_other_cpu,
            "retries": cfg.retries,
        },
        machine=machine(),
        versions={**versions(inprocess[0] if inprocess else {}), "previewer_source": source},
        corpus=[vars(p) for p in photos],
        failures=failures,
        quality=quality,
        output_bytes=sizes,
        inprocess=inprocess,
        results=results,
    )
    text = json.dumps(data, indent=1, default=str) + "\n"
    (WORK / "results.json").write_text(text)
    history = WORK / "history"  # every run's data, kept: results.json is the latest only
    history.mkdir(exist_ok=True)
    (history / f"results-{datetime.datetime.now():%Y%m%d-%H%M%S}.json").write_text(text)
    write_report(data, cfg.docs)


if __name__ == "__main__":
    main()
