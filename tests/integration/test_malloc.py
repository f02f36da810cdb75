"""previewer's malloc settings, as glibc applies them in real processes.

On a kernel whose transparent huge pages are given on request (`madvise`),
the long-running commands start again once with glibc tunables; elsewhere
they set the same arenas and threshold with mallopt. Each test asserts what
this machine's kernel calls for, read from the kernel itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import smaps
from conftest import spawn_service
from previewer.process import memory

MADVISE = memory.thp_mode() == "madvise" and (memory.glibc_version() or (0, 0)) >= (2, 35)
TESTKIT = Path(smaps.__file__).parent
OURS = ":".join(f"{name}={value}" for name, value in memory.TUNABLES)

# Starts again where that gains something, applies the fallback, then reports:
# where a 16 MiB block lands (the main heap, or a mapping of its own), whether
# the heap is marked for huge pages (the "hg" VmFlag that glibc's hugetlb
# tunable sets), and the tunables in force. "start" lines count the starts.
_PROBE = """
import ctypes, json, os
print("start", os.getpid(), flush=True)
import smaps
from previewer.process import memory
memory.start_again_with_tunables()
memory.tune(os.environ)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
address = libc.malloc(16 << 20)  # larger than any free chunk a fresh heap could hold
heaps, heap_flags = smaps.heap()
on_heap = any(low <= address < high for low, high in heaps)
print(json.dumps({
    "where": "heap" if on_heap else "mapping",
    "huge": "hg" in heap_flags,
    "tunables": os.environ.get("GLIBC_TUNABLES"),
    "pid": os.getpid(),
}))
"""


def _probe(operator: dict[str, str]) -> tuple[list[int], dict[str, object]]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in memory.GLIBC_MALLOC_VARIABLES and k != "GLIBC_TUNABLES"
    }
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environ, **operator, "PYTHONPATH": str(TESTKIT)},
        check=True,
    )
    lines = done.stdout.splitlines()
    starts = [int(line.split()[1]) for line in lines if line.startswith("start ")]
    return starts, json.loads(lines[-1])


def test_previewers_settings_are_in_force_after_one_start_again_in_place() -> None:
    starts, found = _probe({})
    if MADVISE:
        assert len(starts) == 2
        assert starts[0] == starts[1] == found["pid"]  # exec: the same process
        assert found == {"where": "mapping", "huge": True, "tunables": OURS, "pid": starts[0]}
    else:  # mallopt in the first start: the same arenas and threshold, no huge pages
        assert starts == [found["pid"]]
        assert (found["where"], found["huge"], found["tunables"]) == ("mapping", False, None)


@pytest.mark.parametrize(
    ("operator", "where"),
    [
        ({"MALLOC_MMAP_THRESHOLD_": str(32 << 20)}, "heap"),
        ({"GLIBC_TUNABLES": f"glibc.malloc.mmap_threshold={32 << 20}"}, "heap"),
        # glibc's own defaults otherwise: its first mmap threshold is 128 KiB
        ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, "mapping"),
    ],
)
def test_glibc_malloc_settings_of_the_operator_win_over_previewers(
    operator: dict[str, str], where: str
) -> None:
    starts, found = _probe(operator)
    assert len(starts) == 1  # no start again
    assert (found["where"], found["huge"]) == (where, False)
    assert found["tunables"] == operator.get("GLIBC_TUNABLES")


@pytest.mark.parametrize("launcher", ["python -m previewer", "previewer script"])
def test_a_running_service_has_its_heap_on_huge_pages_where_the_kernel_gives_them(
    tmp_path: Path, launcher: str
) -> None:
    program = (
        (sys.executable, "-m", "previewer")
        if launcher == "python -m previewer"
        else (str(Path(sys.executable).parent / "previewer"),)
    )
    expected = MADVISE and not memory.set_by_environment(os.environ)
    service = spawn_service(["--cache-dir", str(tmp_path / "cache")], program=program)
    try:
        assert ("hg" in smaps.heap(service.proc.pid)[1]) is expected
    finally:
        assert service.stop() == 0


def test_an_operators_malloc_variable_keeps_the_service_off_huge_pages(tmp_path: Path) -> None:
    service = spawn_service(["--cache-dir", str(tmp_path / "cache")], env={"MALLOC_ARENA_MAX": "4"})
    try:
        assert "hg" not in smaps.heap(service.proc.pid)[1]
    finally:
        assert service.stop() == 0
