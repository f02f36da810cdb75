"""The scale-out demo's tables (Markdown) and charts, from bench/demo_scale.py's data.

The tables go between the demo-scale markers of docs/scale-out.md; the
charts (matplotlib, Agg backend) beside it: scale-out.png (req/s and p99 per
worker count) and scale-up.png (the scale-up timeline).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

MARK_BEGIN = "<!-- demo-scale:begin -->"
MARK_END = "<!-- demo-scale:end -->"


def _timeline(up: dict[str, Any]) -> list[tuple[int, int, int, int]]:
    """Per second of completion: (second, 200s, 504s, other failures)."""
    ok: Counter[int] = Counter()
    late: Counter[int] = Counter()
    other: Counter[int] = Counter()
    for _sent, done, status in up["records"]:
        second = int(done)
        if status == 200:
            ok[second] += 1
        elif status == 504:
            late[second] += 1
        else:
            other[second] += 1
    last = int(max((r[1] for r in up["records"]), default=0))
    return [(s, ok[s], late[s], other[s]) for s in range(last + 1)]


def _statuses(records: list[list[float]]) -> str:
    counts = Counter(int(r[2]) for r in records)
    return ", ".join(f"{k or 'no answer'}: {v}" for k, v in sorted(counts.items()))


def markdown(data: dict[str, Any]) -> str:
    cores, scaling, over = data["cores"], data["scaling"], data["overhead"]
    lines = [
        f"Run of {data['when']} on {cores} cores, `make demo-scale` "
        f"(`bench/demo_scale.py --duration {data['duration']:g}`): wrk at "
        f"{data['concurrency']} connections for {data['duration']:g} s per figure, "
        "every request a miss (a query string no other request has, so neither the "
        "front's cache nor a worker's source cache can answer it), over the corpus "
        "photos up to 5 MP, `/fill/300/200`.",
        "",
        "**Scaling: one front, 1, 2 and 4 workers** (one render at a time each)",
        "",
        "| workers | CPU sets | req/s | vs 1 worker | p50 ms | p99 ms | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    base = scaling[0]["rps"]
    for row in scaling:
        lines.append(
            f"| {row['workers']} | {row['cpus']} | {row['rps']:.1f} | "
            f"{row['rps'] / base:.2f}x | {row['p50_ms']:.0f} | {row['p99_ms']:.0f} | "
            f"{row['errors']} |"
        )
    emb, brk = over["embedded"], over["broker"]
    lines += [
        "",
        f"**RPC overhead: broker against embedded** ({over['renders']} render threads "
        f"either way, any core, {over['reps']} alternated runs each, medians)",
        "",
        "| mode | misses req/s | p50 ms | p99 ms | errors | one request at a time, p50 ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| embedded | {emb['rps']:.1f} | {emb['p50_ms']:.0f} | {emb['p99_ms']:.0f} | "
        f"{emb['errors']} | {emb['single_p50_ms']:.1f} |",
        f"| front + 1 worker | {brk['rps']:.1f} | {brk['p50_ms']:.0f} | {brk['p99_ms']:.0f} | "
        f"{brk['errors']} | {brk['single_p50_ms']:.1f} |",
        "",
        f"Broker mode's miss rate is **{over['ratio'] * 100:.0f}%** of the embedded mode's; "
        f"the broker adds **{over['added_p50_ms']:.1f} ms** at p50 to a single request.",
    ]
    fronts = data["fronts"]
    direct = fronts["rows"][0]["rps"]
    lines += [
        "",
        f"**Several fronts: hits only** ({fronts['previews']} cached previews, "
        f"{data['concurrency']} connections, {len(fronts['rows'][0]['reps_rps'])} "
        f"alternated runs each, medians; the second front holds "
        f"{fronts['front_b_share'] * 100:.0f}% of the previews by the hash)",
        "",
        "| layout | hits req/s | vs direct | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in fronts["rows"]:
        lines.append(
            f"| {row['layout']} | {row['rps']:.0f} | {row['rps'] / direct:.2f}x | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} |"
        )
    up = data["scale_up"]
    timeline = _timeline(up)
    added = up["added_at"]
    late_before = sum(t[2] for t in timeline if t[0] < added)
    late_after = [t[0] for t in timeline if t[2] and t[0] >= added]
    stop = (max(late_after) + 1 - added) if late_after else 0.0
    lines += [
        "",
        f"**Scale-up**: {up['rate']:.1f} misses/s (1.6 times the {up['one_worker_rps']:.1f}/s "
        "one worker managed just before, closed loop) for "
        f"{up['seconds']:.0f} s against a front with `--request-timeout {up['timeout']:g}` "
        f"and one worker; {up['added']} more worker(s) consuming from "
        f"{added:.1f} s. Answers: {_statuses(up['records'])}. 504s before the workers "
        f"joined: {late_before}; the last 504 came {stop:.1f} s after they joined "
        "(requests already waiting past their deadline).",
    ]
    return "\n".join(lines)


def charts(data: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scaling = data["scaling"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"{r['workers']}\n({r['cpus']})" for r in scaling]
    left.bar(labels, [r["rps"] for r in scaling], color="#4C72B0")
    left.set_title("misses, req/s")
    right.bar(labels, [r["p99_ms"] for r in scaling], color="#DD8452")
    right.set_title("misses, p99 latency, ms")
    for ax in (left, right):
        ax.set_xlabel("workers (CPU sets)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"One front and N workers through RabbitMQ, {data['cores']} cores")
    fig.tight_layout()
    fig.savefig(folder / "scale-out.png", dpi=110)
    plt.close(fig)

    up = data["scale_up"]
    timeline = _timeline(up)
    seconds = [t[0] for t in timeline]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.plot(seconds, [t[1] for t in timeline], label="200 per s", color="#55A868")
    ax.plot(seconds, [t[2] for t in timeline], label="504 per s", color="#C44E52")
    if any(t[3] for t in timeline):
        ax.plot(seconds, [t[3] for t in timeline], label="other failures per s", color="#8172B2")
    ax.axvline(up["added_at"], color="black", linestyle="--", linewidth=1)
    ax.annotate(
        f"+{up['added']} worker(s)",
        (up["added_at"], ax.get_ylim()[1] * 0.9),
        xytext=(5, 0),
        textcoords="offset points",
    )
    ax.set_xlabel("seconds since the load began")
    ax.set_ylabel("answers per second")
    ax.set_title(
        f"Scale-up: {up['rate']:.1f} misses/s, --request-timeout {up['timeout']:g} s, "
        "1 worker, then more"
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "scale-up.png", dpi=110)
    plt.close(fig)
