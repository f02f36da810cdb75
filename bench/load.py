"""One load run: wrk with `cycle.lua` against a server while its process tree is measured.

docs/benchmarks.md ("Load results") says what each figure of a `Result` is.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from procs import OtherCpu, TreeSampler

LUA = Path(__file__).resolve().parent / "cycle.lua"


@dataclass(frozen=True)
class Result:
    """One wrk run against one server at one concurrency."""

    peer: str
    path: str  # "miss" or "hit"
    concurrency: int
    rep: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx/3xx answers, socket errors and timeouts
    non2xx: int
    socket_errors: int
    peak_rss_mb: float
    cpu_ms_per_request: float
    other_cpu_pct: float  # of the whole machine, spent by unrelated processes

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def measure(
    *,
    peer: str,
    path: str,
    rep: int,
    url: str,
    paths: list[str],
    concurrency: int,
    duration: float,
    roots: list[int],
    origin_roots: list[int],
    work: Path,
    nonce: str | None,
    headers: tuple[str, ...] = (),
) -> Result:
    """Run wrk for `duration` seconds at `concurrency` connections and measure.

    `nonce` makes every request unique (see cycle.lua); None cycles the plain
    paths, for the hit path. `headers` ("Name: value") go on every request.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: run bench/setup.sh")
    paths_file = work / "paths.txt"
    paths_file.write_text("\n".join(paths) + "\n")
    threads = max(1, min(concurrency, os.cpu_count() or 1))
    argv = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{duration:g}s", "--timeout", "60s"]
    for header in headers:
        argv += ["-H", header]
    argv += ["-s", str(LUA), url, "--", str(paths_file)]
    if nonce is not None:
        argv.append(nonce)

    with (
        OtherCpu([*roots, *origin_roots]) as other,
        OtherCpu(roots) as server,  # for its roots_cpu: the server's own CPU time
        TreeSampler(roots) as sampler,
    ):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)

    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    requests = stats["requests"]
    seconds = stats["duration_us"] / 1e6
    socket_errors = sum(
        stats[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return Result(
        peer=peer,
        path=path,
        concurrency=concurrency,
        rep=rep,
        requests=requests,
        seconds=round(seconds, 3),
        rps=round(requests / seconds, 2),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=stats["status_errors"] + socket_errors,
        non2xx=stats["status_errors"],
        socket_errors=socket_errors,
        peak_rss_mb=round(sampler.peak / 2**20, 1),
        cpu_ms_per_request=round(server.roots_cpu * 1000 / requests, 3) if requests else 0.0,
        other_cpu_pct=round(other.percent, 1),
    )
