"""A process's main heap as /proc/<pid>/smaps describes it (Linux)."""

from __future__ import annotations

from pathlib import Path


def heap(pid: int | str = "self") -> tuple[list[tuple[int, int]], set[str]]:
    """The address ranges of the process's `[heap]` mapping, and their VmFlags."""
    ranges: list[tuple[int, int]] = []
    flags: set[str] = set()
    in_heap = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields[0] == "VmFlags:":
            if in_heap:
                flags.update(fields[1:])
        elif "-" in fields[0] and not fields[0].endswith(":"):
            in_heap = fields[-1] == "[heap]"
            if in_heap:
                low, high = (int(part, 16) for part in fields[0].split("-"))
                ranges.append((low, high))
    return ranges, flags
