"""The architecture's contracts (pyproject.toml, run by `make check`) hold, and each kind fails
on an import that breaks it, naming that import.

Each breaking case runs lint-imports on a copy of the package with one import added, found
first on PYTHONPATH; the checkout itself is never changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    # without coverage's variables: lint-imports imports the copy to find it, and coverage
    # would count the copy's files as previewer's, unexecuted
    env = {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE")}
    env |= {"PYTHONPATH": str(source_root), "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=source_root,
        timeout=120,
        check=False,
    )


def test_the_checkout_keeps_every_contract() -> None:
    done = lint_imports(REPO / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "added", "contract", "named"),
    [
        # a type-only import from a higher layer: a layer broken, and a cycle
        (
            "render/geometry.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from previewer.http.server import Scrape\n",
            "Layers: a module imports only from the layers below its own BROKEN",
            "previewer.render.geometry -> previewer.http.server",
        ),
        (
            "options.py",
            "import pyvips\n",
            "The pure core touches no network, disk, broker, libvips or exporter BROKEN",
            "previewer.options -> pyvips",
        ),
        (
            "service.py",
            "import aiohttp\n",
            "aiohttp: its server in http.server, its client in fetch.fetcher, nowhere else BROKEN",
            "previewer.service -> aiohttp",
        ),
        (
            "cache/index.py",
            "from previewer.cache import disk\n",
            "No import cycles between the modules or packages of one package BROKEN",
            "No cycles are allowed in previewer.cache.\nIt could be made acyclic by removing 1 "
            "dependency:\n\n- .index -> .disk",
        ),
    ],
    ids=["layer", "pure", "protected", "cycle"],
)
def test_an_import_that_breaks_a_contract_fails_and_is_named(
    tmp_path: Path, module: str, added: str, contract: str, named: str
) -> None:
    copy = tmp_path / "previewer"
    shutil.copytree(REPO / "src" / "previewer", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    text = target.read_text()
    future = "from __future__ import annotations\n"
    assert future in text
    target.write_text(text.replace(future, future + added, 1))
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert contract in done.stdout, done.stdout
    assert named in done.stdout, done.stdout
