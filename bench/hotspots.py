"""Where previewer's time goes: a py-spy recording summarised.

`record` samples a running `previewer serve` with py-spy (non-blocking, so
the server is not paused; Python frames only) and keeps the collapsed
stacks. `summarise` splits the samples by kind of thread, told apart by the
bottom of each stack:

- threads with no Python frame: libvips's worker threads (on a miss, where
  the pixel work happens) and any other native thread;
- executor threads (the render pool and the file I/O pool) start in
  `Thread._bootstrap`; while libvips works on such a thread the sample ends
  in the pyvips call that started it;
- everything else is the event loop thread (uvloop runs coroutine steps from
  C, so their stacks start at the coroutine).

and lists the top leaf lines (self time) within each kind, then previewer's
own functions by inclusive time.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from writer import table

KINDS = ("threads with no Python frame", "executor threads", "event loop thread")
_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: run bench/setup.sh")
    return found


def record(pid: int, seconds: float, out: Path, rate: int = 100) -> None:
    """Record `seconds` of collapsed stacks of process `pid` into `out`."""
    argv = [py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
    argv += ["--rate", str(rate), "--format", "raw", "--nonblocking", "-o", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def _short(frame: str) -> str:
    """`func (path/to/module.py:123)` -> `func (path/to/module.py)`."""
    match = _FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


@dataclass
class Summary:
    """Samples by thread kind and the top self-time functions of each kind."""

    total: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    leaves: dict[str, Counter[str]] = field(default_factory=dict)
    ours: Counter[str] = field(default_factory=Counter)  # previewer/* functions, inclusive

    def share(self, count: int) -> float:
        return count / self.total * 100 if self.total else 0.0


def summarise(raw: Path) -> Summary:
    summary = Summary(leaves={kind: Counter() for kind in KINDS})
    for line in raw.read_text().splitlines():
        text = line.strip()
        if text.isdigit():  # a sample with no Python frame at all
            count, frames = int(text), []
        elif match := _LINE.match(text):
            count, frames = int(match["count"]), [f for f in match["stack"].split(";") if f]
        else:
            continue
        if not frames:
            kind, leaf = KINDS[0], "(native code: libvips workers and the like)"
        elif frames[0].startswith("Thread._bootstrap"):
            kind, leaf = KINDS[1], frames[-1]
        else:
            kind, leaf = KINDS[2], frames[-1]
        summary.total += count
        summary.by_kind[kind] += count
        summary.leaves[kind][leaf] += count
        # cli.py frames are the root of every event loop stack: they say nothing
        for frame in {_short(f) for f in frames if "(previewer/" in f and "/cli.py" not in f}:
            summary.ours[frame] += count
    return summary


def markdown(summary: Summary, top: int = 8) -> str:
    """Shares by thread kind, then the top leaf functions of each kind."""
    if not summary.total:
        return "(no samples)"
    body = []
    for kind in KINDS:
        leaves = summary.leaves[kind].most_common(top)
        text = "; ".join(f"`{leaf}` {summary.share(n):.1f}%" for leaf, n in leaves) or "-"
        body.append([kind, f"{summary.share(summary.by_kind[kind]):.1f}%", text])
    ours = "; ".join(f"`{f}` {summary.share(n):.1f}%" for f, n in summary.ours.most_common(top))
    body.append(["previewer functions (inclusive, Python frames only)", "", ours or "-"])
    header = ["thread kind", "share of samples", "top functions (self, share of all samples)"]
    return f"{table(header, body, 'lrl')}\n\n{summary.total} samples of active threads."
