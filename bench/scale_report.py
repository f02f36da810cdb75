"""The scale-out demo's tables (Markdown) and its charts, scale-out.png and scale-up.png."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from writer import table

if TYPE_CHECKING:
    from demo_scale import DemoScale, ScaleUp


SINGLE = "one request at a time, p50 ms"


def _cells(template: str, figures: tuple[float, ...]) -> list[str]:
    """The figures through `template`: one cell for each field (they are separated by spaces)."""
    return template.format(*figures).split(" ")


def _timeline(up: ScaleUp) -> list[tuple[int, int, int, int]]:
    """Per second of completion: (second, 200s, 504s, other failures)."""
    counts: Counter[tuple[int, int]] = Counter()
    for _sent, done, status in up.records:
        counts[int(done), status if status in (200, 504) else 0] += 1
    last = int(max((r[1] for r in up.records), default=0))
    return [(s, counts[s, 200], counts[s, 504], counts[s, 0]) for s in range(last + 1)]


def markdown(data: DemoScale) -> str:
    over, fronts, up = data.overhead, data.fronts, data.scale_up
    base = data.scaling[0].result.rps
    scaling, modes, layouts = [], [], []
    for row in data.scaling:
        r = row.result
        figures: tuple[float, ...] = (r.rps, r.rps / base, r.p50_ms, r.p99_ms, r.errors)
        scaling.append(
            [str(row.workers), row.cpus, *_cells("{:.1f} {:.2f}x {:.0f} {:.0f} {}", figures)]
        )
    for (name, side), label in zip(
        over.sides.items(), ("embedded", "front + 1 worker"), strict=True
    ):
        figures = (side.rps, side.p50_ms, side.p99_ms, side.errors, over.single_p50_ms[name])
        modes.append([label, *_cells("{:.1f} {:.0f} {:.0f} {} {:.1f}", figures)])
    direct = fronts.layouts["one front, direct"].rps
    for name, side in fronts.layouts.items():
        figures = (side.rps, side.rps / direct, side.p50_ms, side.p99_ms, side.errors)
        layouts.append([name, *_cells("{:.0f} {:.2f}x {:.1f} {:.1f} {}", figures)])
    timeline = _timeline(up)
    late_before = sum(t[2] for t in timeline if t[0] < up.added_at)
    late_after = [t[0] for t in timeline if t[2] and t[0] >= up.added_at]
    stop = (max(late_after) + 1 - up.added_at) if late_after else 0.0
    statuses = Counter(r[2] for r in up.records)
    answers = ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(statuses.items()))
    reps = len(next(iter(fronts.layouts.values())).reps_rps)
    return "\n".join(
        [
            f"Run of {data.when} on {data.cores} cores, `make demo-scale` "
            f"(`bench/demo_scale.py --duration {data.duration:g}`): wrk at "
            f"{data.concurrency} connections for {data.duration:g} s per figure, "
            "every request a miss (a query string no other request has, so neither the "
            "front's cache nor a worker's source cache can answer it), over the corpus "
            "photos up to 5 MP, `/fill/300/200`.",
            "",
            "**Scaling: one front, 1, 2 and 4 workers** (one render at a time each)",
            "",
            table(
                ("workers", "CPU sets", "req/s", "vs 1 worker", "p50 ms", "p99 ms", "errors"),
                scaling,
                "rlrrrrr",
            ),
            "",
            f"**RPC overhead: broker against embedded** ({over.renders} render threads "
            f"either way, any core, {over.reps} alternated runs each, medians)",
            "",
            table(
                ("mode", "misses req/s", "p50 ms", "p99 ms", "errors", SINGLE),
                modes,
                "lrrrrr",
            ),
            "",
            f"Broker mode's miss rate is **{over.ratio * 100:.0f}%** of the embedded mode's; "
            f"the broker adds **{over.added_p50_ms:.1f} ms** at p50 to a single request.",
            "",
            f"**Several fronts: hits only** ({fronts.previews} cached previews, "
            f"{data.concurrency} connections, {reps} alternated runs each, medians; the second "
            f"front holds {fronts.front_b_share * 100:.0f}% of the previews by the hash)",
            "",
            table(
                ("layout", "hits req/s", "vs direct", "p50 ms", "p99 ms", "errors"),
                layouts,
                "lrrrrr",
            ),
            "",
            f"**Scale-up**: {up.rate:.1f} misses/s (1.6 times the {up.one_worker_rps:.1f}/s "
            f"one worker managed just before, closed loop) for {up.seconds:.0f} s against a "
            f"front with `--request-timeout {up.timeout:g}` and one worker; {up.added} more "
            f"worker(s) consuming from {up.added_at:.1f} s. Answers: {answers}. 504s before "
            f"the workers joined: {late_before}; the last 504 came {stop:.1f} s after they "
            "joined (requests already waiting past their deadline).",
        ]
    )


def charts(data: DemoScale, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{r.workers}\n({r.cpus})" for r in data.scaling]
    left.bar(labels, [r.result.rps for r in data.scaling], color="#4C72B0")
    left.set_title("misses, req/s")
    right.bar(labels, [r.result.p99_ms for r in data.scaling], color="#DD8452")
    right.set_title("misses, p99 latency, ms")
    for ax in (left, right):
        ax.set_xlabel("workers (CPU sets)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"One front and N workers through RabbitMQ, {data.cores} cores")
    fig.tight_layout()
    fig.savefig(folder / "scale-out.png", dpi=110)
    plt.close(fig)

    up = data.scale_up
    seconds, ok, late, other = zip(*_timeline(up), strict=True)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(seconds, ok, label="200 per s", color="#55A868")
    ax.plot(seconds, late, label="504 per s", color="#C44E52")
    if any(other):
        ax.plot(seconds, other, label="other failures per s", color="#8172B2")
    ax.axvline(up.added_at, color="black", linestyle="--", linewidth=1)
    ax.annotate(
        f"+{up.added} worker(s)",
        (up.added_at, ax.get_ylim()[1] * 0.9),
        xytext=(5, 0),
        textcoords="offset points",
    )
    ax.set_xlabel("seconds since the load began")
    ax.set_ylabel("answers per second")
    ax.set_title(
        f"Scale-up: {up.rate:.1f} misses/s, --request-timeout {up.timeout:g} s, 1 worker, then more"
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "scale-up.png", dpi=110)
    plt.close(fig)
