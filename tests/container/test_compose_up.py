"""compose.yaml brought up by Debian's podman-compose, in both profiles.

podman-compose 1.0.3 (Debian 12) knows no `profiles`: it starts the services
it is given and what they depend on. A profile is brought up by naming its
services, read from compose.yaml: those without `profiles` (the default) and,
for `broker`, those listing it as well, which is what `docker compose
--profile broker up` starts. Health-check conditions in `depends_on` are
only an order to it; the checks wait for the answers instead.

Each run is a project of its own (its containers, network and volumes), taken
down with its volumes afterwards. The published ports are compose.yaml's own,
8080 and 8081 on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from podman import build_image, environ, podman, record

REPO = Path(__file__).resolve().parents[2]
PREVIEW = "/fill/300/200/origin/landscape.jpg"
UP_WITHIN = 240  # seconds: RabbitMQ's first start on a loaded machine


def services(profile: str | None) -> list[str]:
    """The services `docker compose [--profile PROFILE] up` starts."""
    declared = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]
    return [
        name
        for name, service in declared.items()
        if not service.get("profiles") or profile in service["profiles"]
    ]


def compose(project: str, *args: str, timeout: float = 600) -> str:
    program = shutil.which("podman-compose")
    if program is None:
        raise RuntimeError("podman-compose is not installed: run scripts/install-system-deps.sh")
    done = subprocess.run(
        [program, "--project-name", project, "--file", str(REPO / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environ(),
        cwd=REPO,
    )
    if done.returncode != 0:
        raise RuntimeError(f"podman-compose {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout + done.stderr


def answer(url: str, within: float) -> tuple[int, dict[str, str]]:
    """The first answer other than a refused or reset connection, or a 502 from nginx."""
    deadline = time.monotonic() + within
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                resp.read()
                return resp.status, dict(resp.headers)
        except urllib.error.HTTPError as exc:
            last = exc.code
            if exc.code not in (502, 503):  # 503: a front not yet connected to RabbitMQ
                return exc.code, dict(exc.headers)
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.2)  # containers starting: no event to wait on
    raise AssertionError(f"{url} did not answer within {within}s (last: {last})")


@pytest.fixture
def project(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    """Bring up the profile given as the test's parameter; remove all of it afterwards."""
    profile: str | None = request.param
    # the image compose.yaml names, as `docker compose up --build` would make it
    podman("tag", build_image(REPO), "localhost/previewer:local")
    name = f"previewer-check-{uuid.uuid4().hex[:8]}"
    wanted = services(profile)
    try:
        compose(name, "up", "--detach", *wanted)
        yield name, wanted
    finally:
        # podman-compose 1.0.3's `down` leaves the containers' anonymous volumes
        # (the workers' caches) and the project's network: removed here
        label = f"label=io.podman.compose.project={name}"
        ids = podman("ps", "--all", "--quiet", "--filter", label).stdout.split()
        if ids:
            podman("rm", "--force", "--volumes", "--time", "10", *ids, timeout=300)
        compose(name, "down", "--volumes", timeout=300)
        podman("network", "rm", f"{name}_default", check=False)


def running(project: str) -> set[str]:
    names = podman(
        "ps", "--filter", f"label=io.podman.compose.project={project}",
        "--format", '{{ index .Labels "com.docker.compose.service" }}',
    ).stdout.split()  # fmt: skip
    return set(names)


@pytest.mark.parametrize("project", [None], indirect=True, ids=["default"])
def test_the_default_profile_serves_a_preview_from_the_demo_origin(
    project: tuple[str, list[str]],
) -> None:
    name, wanted = project
    assert set(wanted) == {"previewer", "origin"}
    started = time.monotonic()
    status, headers = answer("http://127.0.0.1:8080" + PREVIEW, UP_WITHIN)
    record(
        "compose up, default profile: up to the first preview",
        f"{time.monotonic() - started:.1f} s",
    )
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert running(name) == set(wanted)


@pytest.mark.parametrize("project", ["broker"], indirect=True, ids=["broker"])
def test_the_broker_profile_serves_a_preview_through_the_fronts_nginx(
    project: tuple[str, list[str]],
) -> None:
    name, wanted = project
    assert {"rabbitmq", "worker", "front-1", "front-2", "balancer"} <= set(wanted)
    started = time.monotonic()
    status, headers = answer("http://127.0.0.1:8081" + PREVIEW, UP_WITHIN)
    record(
        "compose up, broker profile: up to the first preview", f"{time.monotonic() - started:.1f} s"
    )
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert answer("http://127.0.0.1:8081" + PREVIEW, 30)[1]["X-Cache"] == "HIT"
    assert answer("http://127.0.0.1:8080" + PREVIEW, 30)[0] == 200  # the default's too
    assert running(name) == set(wanted)
