"""The one report writer: Markdown tables, and generated blocks between markers in docs.

Each stage returns its figures and builds its tables with `table`; `write_block`
puts the generated text between a doc's two markers, so the prose around the
block stays in the doc, written by hand. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def table(header: Sequence[str], body: Iterable[Sequence[str]], align: str = "") -> str:
    """A Markdown table; `align` holds one letter a column, `r` for right-aligned."""
    rule = "".join("---:|" if a == "r" else "---|" for a in align.ljust(len(header), "l"))
    lines = ["| " + " | ".join(header) + " |", "|" + rule]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def write_block(path: Path, text: str, begin: str, end: str) -> None:
    """Put `text` between the markers in `path` (appended with them if they are missing;
    the file and its folder made if they are)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = path.read_text() if path.exists() else ""
    if begin not in doc:
        doc += f"\n{begin}\n{end}\n"
    before, _, rest = doc.partition(begin)
    _, _, after = rest.partition(end)
    path.write_text(f"{before}{begin}\n{text}\n{end}{after}")
