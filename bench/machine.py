"""What is under test, and on what: the machine, the versions, the previewer source.

`snapshot_previewer` copies src/previewer once at the start of a run and
points every child process at the copy (PYTHONPATH), so edits to the work
tree during a run cannot change what is measured. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import hotspots
import peers
import psutil


def snapshot_previewer(run: Path) -> str:
    """Copy src/previewer as it is now and make every child process import the copy.

    The work tree may change while a run lasts; the snapshot keeps one version
    under test from start to end. Returns the git revision it was taken at.
    """
    root = Path(__file__).resolve().parent.parent
    shutil.copytree(
        root / "src" / "previewer",
        run / "src" / "previewer",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(run / "src"), os.environ.get("PYTHONPATH", "")) if p
    )
    head = _first_line(["git", "-C", str(root), "rev-parse", "--short", "HEAD"])
    changed = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--", "src/previewer"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if not changed:
        return head
    digest = hashlib.sha256()
    for path in sorted((run / "src" / "previewer").rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{head} + uncommitted changes (sources sha256 {digest.hexdigest()[:12]})"


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    debian = Path("/etc/debian_version")
    return {
        "cores": os.cpu_count() or 1,
        "cpu": cpu,
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "kernel": platform.release(),
        "os": f"Debian {debian.read_text().strip()}" if debian.exists() else platform.platform(),
    }


def versions(inprocess: dict[str, Any]) -> dict[str, str]:
    thumbor = peers.THUMBOR_ENV / "bin"
    return {
        "python": platform.python_version(),
        "previewer": _first_line([str(peers.previewer_binary()), "--version"]).split()[-1],
        "aiohttp": metadata.version("aiohttp"),
        "pyvips": inprocess.get("pyvips", "?"),
        "libvips": inprocess.get("libvips", "?"),
        "pillow": inprocess.get("pillow", "n/a"),
        "thumbor": _first_line([str(thumbor / "thumbor"), "--version"]).split()[-1],
        "thumbor_pillow": _first_line(
            [str(thumbor / "python"), "-c", "import PIL; print(PIL.__version__)"]
        ),
        "nginx": _first_line([peers.NGINX, "-v"]).replace("nginx version: ", ""),
        "wrk": " ".join(_first_line([shutil.which("wrk") or "wrk", "-v"]).split()[:2]),
        "py_spy": _first_line([hotspots.py_spy(), "--version"]).split()[-1],
    }
