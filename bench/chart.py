"""docs/benchmarks.png: req/s and p99 per peer and path, from one run's results.

matplotlib with the Agg backend (no display), imported only when a chart is drawn.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from figures import rows
from load import Result
from results import Results


def _rps(r: Result) -> float:
    return r.rps


def _p99(r: Result) -> float:
    return r.p99_ms


def draw(results: Results, out: Path) -> None:
    """Req/s and p99 per peer and path, bars at each concurrency with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    summary = rows(results.results)
    concs = results.config.concurrency
    cores = results.machine.cores
    inprocess = f"in-process pyvips ({cores} thr)"
    pyvips = [rep.previews_per_second[f"pyvips-{cores}t"] for rep in results.inprocess]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    for row_index, path in enumerate(("miss", "hit")):
        peers = list(dict.fromkeys(r.label for r in summary if r.path == path))
        for col, (figure, unit) in enumerate(((_rps, "req/s"), (_p99, "p99 latency, ms"))):
            ax = axes[row_index][col]
            names = [*peers, inprocess] if figure is _rps and path == "miss" else peers
            width = 0.8 / len(concs)
            for ci, conc in enumerate(concs):
                meds, lows, highs = [], [], []
                for name in names:
                    values = pyvips if name == inprocess else []
                    for r in summary:
                        if (r.path, r.label, r.concurrency) == (path, name, conc):
                            values = r.values(figure)
                    med = statistics.median(values) if values else 0.0
                    meds.append(med)
                    lows.append(med - min(values) if values else 0.0)
                    highs.append(max(values) - med if values else 0.0)
                xs = [i + (ci - (len(concs) - 1) / 2) * width for i in range(len(names))]
                ax.bar(xs, meds, width, yerr=[lows, highs], capsize=3, label=f"c={conc}")
                for x, med in zip(xs, meds, strict=True):
                    ax.annotate(
                        f"{med:,.0f}" if med >= 100 else f"{med:.1f}",
                        (x, med),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=15, ha="right", fontsize=8)
            ax.set_title(f"{path} path: {unit}")
            if path == "hit":
                ax.set_yscale("log")
                plain = ticker.FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(ticker.NullFormatter())
            ax.legend(fontsize=8)
            ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        f"300x200 fill, {cores} cores, medians of {results.config.reps} runs (whiskers: min-max)"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
