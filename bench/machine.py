"""What is under test, and on what: the machine, the versions, the previewer source.

`snapshot_previewer` copies src/previewer at the start of a run and points
every child process at the copy (PYTHONPATH), so edits to the work tree
during a run cannot change what is measured.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import peers
import psutil


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    memory_gib: float
    kernel: str
    os: str


@dataclass(frozen=True)
class Versions:
    python: str
    previewer: str
    previewer_source: str  # the git revision of the snapshot, and whether it was changed
    aiohttp: str
    pyvips: str
    libvips: str
    pillow: str  # Pillow of the in-process comparison, with its libjpeg
    thumbor: str
    thumbor_pillow: str
    nginx: str
    wrk: str


def snapshot_previewer(run: Path) -> str:
    """Copy src/previewer as it is now for every child process; the git revision it is at."""
    root = Path(__file__).resolve().parent.parent
    copy = run / "src" / "previewer"
    shutil.copytree(root / "src" / "previewer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(run / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    head = _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    status = ["git", "-C", str(root), "status", "--porcelain", "--", "src/previewer"]
    if not subprocess.run(status, capture_output=True, text=True, check=False).stdout.strip():
        return head
    digest = hashlib.sha256()
    for path in sorted(copy.rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{head} + uncommitted changes (sources sha256 {digest.hexdigest()[:12]})"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> Machine:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    debian = Path("/etc/debian_version")
    return Machine(
        cores=os.cpu_count() or 1,
        cpu=cpu,
        memory_gib=psutil.virtual_memory().total / 2**30,
        kernel=platform.release(),
        os=f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform(),
    )


def versions(source: str, libvips: str, pyvips: str, pillow: str) -> Versions:
    """The versions of everything under test; the in-process stage reports libvips and Pillow."""
    thumbor = peers.THUMBOR_ENV / "bin"
    return Versions(
        python=platform.python_version(),
        previewer=_first_line([str(peers.previewer_binary()), "--version"]).split()[-1],
        previewer_source=source,
        aiohttp=metadata.version("aiohttp"),
        pyvips=pyvips,
        libvips=libvips,
        pillow=pillow,
        thumbor=_first_line([str(thumbor / "thumbor"), "--version"]).split()[-1],
        thumbor_pillow=_first_line(
            [str(thumbor / "python"), "-c", "import PIL; print(PIL.__version__)"]
        ),
        nginx=_first_line([peers.NGINX, "-v"]).replace("nginx version: ", ""),
        wrk=" ".join(_first_line([shutil.which("wrk") or "wrk", "-v"]).split()[:2]),
    )
