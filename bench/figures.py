"""The figures of one benchmark run, and the table of targets they are held to.

Readers take figures out of a run's `results.Results` (medians over the
repetitions per peer, path and concurrency; the in-process limit; a stage's
value); `TARGETS` declares every target once, and `outcomes` evaluates them
for the targets table that report.py writes and run.py prints.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from load import Result
from peers import PEERS
from results import LoadRun, Results, Startup

# A figure read from a run at one concurrency; None when the run lacks it.
Reader = Callable[[Results, int], float | None]
Figure = Callable[[Result], float]


def _rps(r: Result) -> float:
    return r.rps


@dataclass(frozen=True)
class Row:
    """The repetitions of one peer on one path at one concurrency."""

    peer: str
    path: str
    concurrency: int
    runs: list[Result]

    @property
    def label(self) -> str:
        return label(self.peer)

    def values(self, figure: Figure) -> list[float]:
        return [figure(r) for r in self.runs]


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


def rows(runs: Iterable[LoadRun]) -> list[Row]:
    """The load runs by path, peer and concurrency, misses first, peers in PEERS's order."""
    grouped: dict[tuple[str, str, int], list[Result]] = defaultdict(list)
    for run in runs:
        r = run.result
        grouped[(r.path, r.peer, r.concurrency)].append(r)
    order = {name: i for i, name in enumerate(PEERS)}
    out = [Row(peer, path, conc, runs) for (path, peer, conc), runs in grouped.items()]
    out.sort(key=lambda r: (r.path != "miss", order.get(r.peer, 99), r.concurrency))
    return out


def median(
    results: Results, path: str, peer: str, conc: int, figure: Figure = _rps
) -> float | None:
    """The median of one load figure over the repetitions."""
    values = [
        figure(run.result)
        for run in results.results
        if (run.result.path, run.result.peer, run.result.concurrency) == (path, peer, conc)
    ]
    return statistics.median(values) if values else None


def inprocess_median(results: Results, key: str) -> float | None:
    """The median in-process rate of `key` (`pyvips-2t`: pyvips on 2 threads)."""
    rates = [rep.previews_per_second for rep in results.inprocess]
    values = [r[key] for r in rates if key in r]  # no Pillow without thumbor's venv
    return statistics.median(values) if values else None


# --- readers --------------------------------------------------------------------------


def load(path: str, peer: str, figure: Figure = _rps) -> Reader:
    """A load figure of `peer` on `path`, median over repetitions."""
    return lambda results, conc: median(results, path, peer, conc, figure)


def inprocess(engine: str) -> Reader:
    """The in-process rate of `engine` on one thread per core."""
    return lambda results, _conc: inprocess_median(results, f"{engine}-{results.machine.cores}t")


def stage(name: str, key: str) -> Reader:
    """A figure of a child stage's JSON, absent if the stage did not run."""

    def read(results: Results, _conc: int) -> float | None:
        value = results.stages.get(name, {}).get(key)
        return None if value is None else float(value)

    return read


def startup(figure: Callable[[Startup], float | None]) -> Reader:
    """A figure of the start-up stage, absent if it did not run."""
    return lambda results, _conc: figure(results.startup) if results.startup else None


# --- the targets ----------------------------------------------------------------------

_DIGITS = {"ms": 2, "s": 2, "MB": 0}


@dataclass(frozen=True)
class Target:
    """One figure and its bound.

    With `per`, the figure is the ratio `measured / per`, shown as `x` or `%`;
    without, it is `measured` itself, in `unit`. The bound is a number, or
    another figure (`bound_name` names it). It is checked at each concurrency,
    or only at the highest (`top`: also figures of no load). `what` may name
    `{c}` (the concurrency), `{n}` (the cores) and `{entries}` (the start-up
    stage's cache size).
    """

    what: str
    measured: Reader
    bound: float | Reader
    per: Reader | None = None
    unit: Literal["x", "%", "ms", "s", "MB"] = "x"
    at_most: bool = False  # the figure must not exceed the bound (else: reach it)
    top: bool = False
    bound_name: str = ""

    def _format(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "%":
            return f"{value * 100:.0f}%"
        return f"{value:.{_DIGITS[self.unit]}f} {self.unit}"

    def evaluate(self, results: Results, conc: int) -> Outcome:
        entries = results.startup.entries if results.startup else 0
        what = self.what.format(c=conc, n=results.machine.cores, entries=entries)
        sign = "≤" if self.at_most else "≥"
        bound: float | None
        if callable(self.bound):
            bound = self.bound(results, conc)
            shown = self._format(bound) if bound is not None else "n/a"
            target = f"{sign} {self.bound_name} ({shown})"
        else:
            bound = self.bound
            ratio = self.unit in ("x", "%")
            target = f"{sign} {self._format(bound) if ratio else f'{bound:g} {self.unit}'}"
        value = self.measured(results, conc)
        if self.per is not None:
            den = self.per(results, conc)
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
            load("hit", peer, lambda r: r.p99_ms),
            5.0,
            unit="ms",
            at_most=True,
            top=True,
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
        top=True,
    ),
    Target(
        "miss c={c}: previewer (centre) peak RSS",
        load("miss", "previewer-centre", lambda r: r.peak_rss_mb),
        load("miss", "thumbor", lambda r: r.peak_rss_mb),
        unit="MB",
        at_most=True,
        top=True,
        bound_name="thumbor",
    ),
    *(
        Target(
            f"start-up to serving over {{entries:,}} entries, page cache {kind}",
            startup(figure),
            3.0,
            unit="s",
            at_most=True,
            top=True,
        )
        for kind, figure in (
            ("warm", lambda s: s.warm_median),
            ("cold", lambda s: s.cold_median),
        )
    ),
)


def outcomes(results: Results, targets: Iterable[Target] = TARGETS) -> list[Outcome]:
    """Each target at each concurrency it applies to, in table order."""
    concurrency = results.config.concurrency
    out = []
    for target in targets:
        at = [max(concurrency)] if target.top else concurrency
        out += [target.evaluate(results, conc) for conc in at]
    return out
