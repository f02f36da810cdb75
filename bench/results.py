"""The typed results of one `make bench` run, saved as bench/.work/results.json.

Each stage returns one of these frozen dataclasses (the child stages print it
as JSON); `save` writes a run's `Results` and `read` builds them again from
the file, for `bench/run.py --report`. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from corpus import Photo
from load import Result
from machine import Machine, Versions
from peers import PEERS
from srcset import Srcset

T = TypeVar("T")


@dataclass(frozen=True)
class Quality:
    """One peer's previews of the corpus, checked and scored (bench/quality.py)."""

    checked: int
    problems: dict[str, str]
    ssim: dict[str, float]
    ssim_mean: float | None
    ssim_min: float | None


@dataclass(frozen=True)
class Limits:
    """The in-process limit of one repetition (bench/inprocess.py, bench/pillow_limit.py)."""

    previews_per_second: dict[str, float]  # "pyvips-2t": pyvips on 2 threads
    per_file_ms: dict[str, dict[str, float]] | None  # engine -> file -> ms
    libvips: str
    pyvips: str
    malloc: str
    vips_concurrency: int | None
    pillow: str | None = None  # "12.3.0 (libjpeg-turbo 6.2)" when thumbor's venv ran it
    other_cpu_pct: float = 0.0
    attempts: int = 1


@dataclass(frozen=True)
class Startup:
    """`previewer serve` over a cache of `entries` entries (bench/startup.py), in seconds."""

    entries: int
    entries_reported: list[int]
    fill_seconds: float
    warm_seconds: list[float]
    warm_median: float | None
    warm_loaded_seconds: list[float]
    warm_loaded_median: float | None
    cold_seconds: list[float]
    cold_median: float | None
    cold_loaded_seconds: list[float]
    cold_loaded_median: float | None


@dataclass(frozen=True)
class LoadRun:
    """One kept load run: wrk's figures, the try it was, previewer's counter deltas."""

    result: Result
    attempts: int
    counters: dict[str, int]

    @property
    def other_cpu_pct(self) -> float:
        return self.result.other_cpu_pct


@dataclass(frozen=True)
class Settings:
    """The settings of a run's load, from BENCH_* (docs/benchmarks.md lists them)."""

    reps: int = 3
    duration: float = 20.0
    concurrency: list[int] = field(default_factory=lambda: [4, 16])
    peers: list[str] = field(default_factory=lambda: list(PEERS))
    inprocess_seconds: float = 10.0
    startup_entries: int = 100_000
    max_other_cpu: float = 10.0
    retries: int = 2


@dataclass(frozen=True)
class Results:
    date: str
    wall_minutes: float
    config: Settings
    machine: Machine
    versions: Versions
    corpus: list[Photo]
    failures: dict[str, str]  # peer (or load run) -> why it did not run
    quality: dict[str, Quality]
    output_bytes: dict[str, float]  # peer -> mean preview bytes
    inprocess: list[Limits]
    results: list[LoadRun]
    startup: Startup | None
    srcset: Srcset | None
    stages: dict[str, dict[str, Any]]  # the other child stages' JSON, by stage
    errors: dict[str, str]  # stage -> why it failed


def build(cls: type[T], value: Any) -> T:
    """`value`, parsed from JSON, as an instance of `cls` (dataclasses, lists, dicts, unions)."""
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        fields = {f.name: build(hints[f.name], value[f.name]) for f in dataclasses.fields(cls)}
        return typing.cast(T, cls(**fields))
    if origin is list:
        return typing.cast(T, [build(args[0], v) for v in value])
    if origin is dict:
        return typing.cast(T, {k: build(args[1], v) for k, v in value.items()})
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return typing.cast(T, None)
        return typing.cast(T, build(next(a for a in args if a is not type(None)), value))
    return typing.cast(T, value)


def save(results: Results, path: Path) -> str:
    text = json.dumps(dataclasses.asdict(results), indent=1) + "\n"
    path.write_text(text)
    return text


def read(path: Path) -> Results:
    return build(Results, json.loads(path.read_text()))
