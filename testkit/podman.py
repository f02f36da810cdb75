"""podman as the container checks run it (tests/container/, make container-check).

Every call reads tests/container/containers.conf (CONTAINERS_CONF): what a
root podman needs on a host without systemd and on cgroup v1 (cgroupfs, runc,
open-file and process limits within the host's) and bridge networks that
resolve compose's service names (netavark, aardvark-dns). The containers the
checks start themselves run on the host's network: loopback is the host's, so
they reach the tests' origins and RabbitMQ on 127.0.0.1, and the tests reach
them there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "tests" / "container" / "containers.conf"


def environ() -> dict[str, str]:
    """This process's environment with CONTAINERS_CONF set: for podman and podman-compose."""
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def binary() -> str:
    found = shutil.which("podman")
    if found is None:
        raise RuntimeError("podman is not installed: run scripts/install-system-deps.sh")
    return found


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` with the host's flags; raises with its output when it fails."""
    done = subprocess.run(
        [binary(), *args], capture_output=True, text=True, timeout=timeout, env=environ()
    )
    if check and done.returncode != 0:
        raise RuntimeError(
            f"podman {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done


class Container:
    """One detached container on the host's network; `remove` ends and deletes it."""

    def __init__(self, image: str, args: Sequence[str] = (), options: Sequence[str] = ()) -> None:
        self.name = f"previewer-check-{uuid.uuid4().hex[:10]}"
        self.image = image
        self.args = list(args)
        self.options = list(options)

    def start(self) -> Container:
        podman("run", "--detach", "--name", self.name, "--network", "host", *self.options,
               self.image, *self.args)  # fmt: skip
        return self

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return state.stdout.strip() == "true"

    def exec(self, *command: str) -> str:
        return podman("exec", self.name, *command).stdout

    def logs(self) -> str:
        done = podman("logs", self.name, check=False)
        return done.stdout + done.stderr

    def stop(self, grace: float) -> int:
        """SIGTERM (the image's stop signal), SIGKILL after `grace` s; the exit code."""
        podman("stop", "--time", str(int(grace)), self.name, timeout=grace + 60)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)

    def wait(self, timeout: float) -> int:
        """The container's exit code, once it has exited."""
        return int(podman("wait", self.name, timeout=timeout).stdout.strip())

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            podman("rm", "--force", "--volumes", "--time", "5", self.name, timeout=60)


# --- the image built from the Dockerfile, and the figures the checks measure ----------

IMAGE = "localhost/previewer:check"
FIGURES_FILE = Path(os.environ.get("CONTAINER_FIGURES", "container-figures.txt"))


def record(name: str, value: str) -> None:
    """Add one measured figure to FIGURES_FILE (make container-check prints it)."""
    with FIGURES_FILE.open("a") as out:
        out.write(f"{name}: {value}\n")


@functools.cache
def build_image(context: Path) -> str:
    """`podman build` the Dockerfile in `context` as Docker users build it, once a process.

    `--format docker` keeps its HEALTHCHECK; `--pull=never`: the bases are the
    local images scripts/base-images.sh made. Records the build time and size.
    """
    started = time.monotonic()
    podman("build", "--format", "docker", "--pull=never", "--network", "host",
           "--tag", IMAGE, str(context), timeout=900)  # fmt: skip
    record("image build", f"{time.monotonic() - started:.1f} s")
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    record("image size", f"{size / 1e6:.0f} MB")
    return IMAGE
