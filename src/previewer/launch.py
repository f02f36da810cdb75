"""The `previewer` command's entry point, and `python -m previewer`'s.

The long-running commands first start again with previewer's glibc malloc
tunables, which glibc reads only at start (process/memory.py). This module imports
nothing heavy, so that costs a bare interpreter start; the command line
itself is cli.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from previewer.process import memory

LONG_RUNNING = ("serve", "worker")


def command_of(args: Sequence[str]) -> str | None:
    """The command word of a command line (its first word that is not an option)."""
    return next((word for word in args if not word.startswith("-")), None)


def main() -> int:
    if command_of(sys.argv[1:]) in LONG_RUNNING:
        memory.start_again_with_tunables()
    from previewer.cli import main as run

    return run()
