"""The figures of one benchmark run, and the table of targets they are held to.

`run.py` gathers a plain dict (`Data`, also saved as bench/.work/results.json).
This module reads figures out of it (medians over repetitions, per peer, path
and concurrency; the in-process limit; a stage's value) and declares every
target once, in `TARGETS`: what is measured, against what, and the bound.
`outcomes(data)` evaluates the table; report.py prints it and run.py echoes it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from peers import PEERS

Data = dict[str, Any]

# A figure read from a run at one concurrency; None when the run lacks it.
Reader = Callable[[Data, int], float | None]


@dataclass(frozen=True)
class Row:
    """The repetitions of one peer on one path at one concurrency, summarised."""

    peer: str
    path: str
    concurrency: int
    reps: int
    rps: list[float]
    p50: list[float]
    p99: list[float]
    errors: int
    rss: list[float]
    cpu_ms: list[float]
    other_cpu: list[float]

    @property
    def label(self) -> str:
        return label(self.peer)


def label(peer: str) -> str:
    """How a peer is named in the tables."""
    if peer in PEERS:
        return PEERS[peer].label
    return {"pillow": "Pillow draft + fit (in process)"}.get(peer, peer)


def spread(values: list[float], digits: int = 1) -> str:
    """`median (min-max)`, or the one value, or `-`."""
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def rows(results: Iterable[dict[str, Any]]) -> list[Row]:
    grouped: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        grouped[(r["path"], r["peer"], r["concurrency"])].append(r)
    out = []
    for (path, peer, conc), runs in grouped.items():
        out.append(
            Row(
                peer=peer,
                path=path,
                concurrency=conc,
                reps=len(runs),
                rps=[r["rps"] for r in runs],
                p50=[r["p50_ms"] for r in runs],
                p99=[r["p99_ms"] for r in runs],
                errors=sum(r["errors"] for r in runs),
                rss=[r["peak_rss_mb"] for r in runs],
                cpu_ms=[r["cpu_ms_per_request"] for r in runs],
                other_cpu=[r["other_cpu_pct"] for r in runs],
            )
        )
    order = {name: i for i, name in enumerate(PEERS)}
    out.sort(key=lambda r: (r.path != "miss", order.get(r.peer, 99), r.concurrency))
    return out


def median(data: Data, path: str, peer: str, conc: int, field: str = "rps") -> float | None:
    """The median of one load figure over the repetitions."""
    values = [
        r[field]
        for r in data["results"]
        if r["path"] == path and r["peer"] == peer and r["concurrency"] == conc
    ]
    return statistics.median(values) if values else None


def inprocess_median(data: Data, key: str) -> float | None:
    """The median in-process rate of `key` (`pyvips-2t`: pyvips on 2 threads)."""
    rates = [rep["previews_per_second"] for rep in data["inprocess"]]
    values = [r[key] for r in rates if key in r]  # no Pillow without thumbor's venv
    return statistics.median(values) if values else None


def cores(data: Data) -> int:
    return int(data["machine"]["cores"])


# --- readers --------------------------------------------------------------------------


def load(path: str, peer: str, field: str = "rps") -> Reader:
    """A load figure of `peer` on `path`, median over repetitions."""
    return lambda data, conc: median(data, path, peer, conc, field)


def inprocess(engine: str) -> Reader:
    """The in-process rate of `engine` on one thread per core."""
    return lambda data, _conc: inprocess_median(data, f"{engine}-{cores(data)}t")


def stage(name: str, key: str) -> Reader:
    """A figure of an optional stage (`startup`, `srcset`), absent if it did not run."""

    def read(data: Data, _conc: int) -> float | None:
        value = (data.get(name) or {}).get(key)
        return None if value is None else float(value)

    return read


# --- the targets ----------------------------------------------------------------------

_DIGITS = {"ms": 2, "s": 2, "MB": 0}


@dataclass(frozen=True)
class Target:
    """One figure and its bound.

    With `per`, the figure is the ratio `measured / per`, shown as `x` or `%`;
    without, it is `measured` itself, in `unit`. The bound is a number, or
    another figure (`bound_name` names it). `at` says where it is checked:
    at each concurrency, the highest only, or once (figures of no load).
    `what` may name `{c}` (the concurrency), `{n}` (the cores) and
    `{entries}` (the start-up stage's cache size).
    """

    what: str
    measured: Reader
    bound: float | Reader
    per: Reader | None = None
    unit: Literal["x", "%", "ms", "s", "MB"] = "x"
    at_most: bool = False  # the figure must not exceed the bound (else: reach it)
    at: Literal["each", "top", "once"] = "each"
    bound_name: str = ""

    def _format(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "%":
            return f"{value * 100:.0f}%"
        return f"{value:.{_DIGITS[self.unit]}f} {self.unit}"

    def evaluate(self, data: Data, conc: int) -> Outcome:
        startup = data.get("startup") or {}
        what = self.what.format(c=conc, n=cores(data), entries=startup.get("entries", 0))
        sign = "≤" if self.at_most else "≥"
        bound: float | None
        if callable(self.bound):
            bound = self.bound(data, conc)
            shown = self._format(bound) if bound is not None else "n/a"
            target = f"{sign} {self.bound_name} ({shown})"
        else:
            bound = self.bound
            ratio = self.unit in ("x", "%")
            target = f"{sign} {self._format(bound) if ratio else f'{bound:g} {self.unit}'}"
        value = self.measured(data, conc)
        if self.per is not None:
            den = self.per(data, conc)
            value = value / den if value and den else None
        if value is None:
            return Outcome(what, "n/a", target, "-")
        if bound is None:
            return Outcome(what, self._format(value), target, "-")
        met = value <= bound if self.at_most else value >= bound
        return Outcome(what, self._format(value), target, "yes" if met else "no")


@dataclass(frozen=True)
class Outcome:
    what: str
    measured: str
    target: str
    met: str  # yes, no, or - when a figure is missing


def _hit_targets(peer: str, name: str) -> tuple[Target, ...]:
    return (
        Target(
            f"hit c={{c}}: {name} / thumbor + result storage",
            load("hit", peer),
            5.0,
            per=load("hit", "thumbor-rs"),
        ),
        Target(
            f"hit c={{c}}: {name} / nginx static",
            load("hit", peer),
            0.15,
            per=load("hit", "static"),
            unit="%",
        ),
        Target(
            f"hit c={{c}}: {name} p99",
            load("hit", peer, "p99_ms"),
            5.0,
            unit="ms",
            at_most=True,
            at="top",
        ),
    )


TARGETS: tuple[Target, ...] = (
    *(
        Target(
            f"miss c={{c}}: previewer ({gravity}) / thumbor",
            load("miss", f"previewer-{gravity}"),
            2.3,
            per=load("miss", "thumbor"),
        )
        for gravity in ("centre", "attention")
    ),
    Target(  # 80%: the origin and wrk share the machine's cores with the service
        "miss c={c}: previewer (centre) / in-process previewer.render.imaging, {n} threads",
        load("miss", "previewer-centre"),
        0.8,
        per=inprocess("previewer"),
        unit="%",
    ),
    Target(
        "miss c={c}: previewer (centre) / in-process pyvips, {n} threads",
        load("miss", "previewer-centre"),
        0.9,
        per=inprocess("pyvips"),
        unit="%",
    ),
    *_hit_targets("previewer-attention", "previewer"),
    *_hit_targets("previewer-quiet", "previewer, access log off"),
    Target(
        "hit c={c}: previewer with its slow-client protections (defaults) / all off",
        stage("protection_cost", "ratio_median"),
        0.97,
        at="top",
    ),
    Target(
        "miss c={c}: previewer (centre) peak RSS",
        load("miss", "previewer-centre", "peak_rss_mb"),
        load("miss", "thumbor", "peak_rss_mb"),
        unit="MB",
        at_most=True,
        at="top",
        bound_name="thumbor",
    ),
    *(
        Target(
            f"start-up to serving over {{entries:,}} entries, page cache {kind}",
            stage("startup", f"{kind}_median"),
            3.0,
            unit="s",
            at_most=True,
            at="once",
        )
        for kind in ("warm", "cold")
    ),
)


def outcomes(data: Data, targets: Iterable[Target] = TARGETS) -> list[Outcome]:
    """Each target at each concurrency it applies to, in table order."""
    concurrency: list[int] = data["config"]["concurrency"]
    out = []
    for target in targets:
        at = {"each": concurrency, "top": [max(concurrency)], "once": [max(concurrency)]}
        out += [target.evaluate(data, conc) for conc in at[target.at]]
    return out
