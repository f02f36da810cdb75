"""compose.yaml brought up by Debian's podman-compose, in both profiles.

podman-compose 1.0.3 (Debian 12) knows no `profiles`: it starts the services
it is given and what they depend on. A profile is brought up by naming its
services, read from compose.yaml: those without `profiles` (the default) and,
for `broker`, those listing it as well, which is what `docker compose
--profile broker up` starts. Health-check conditions in `depends_on` are
only an order to it; the checks wait for the answers instead.

Before the first preview, the checks wait until every service runs (a
container left Created or exited fails the check with its log), until the
containers that fetch resolve the names they fetch from, and, in the broker
profile, until both workers consume the job queue. aardvark-dns (1.4, Debian
12) is reloaded each time a container joins the network, and a query that
arrives during a reload gets no answer: a worker that looked up `origin`
while the last containers were starting waited out its fetch timeout, and
the preview was a 504 `source_timeout`. Nothing of this is a fixed sleep.

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
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from podman import build_image, environ, podman, record

REPO = Path(__file__).resolve().parents[2]
PREVIEW = "/fill/300/200/origin/landscape.jpg"
UP_WITHIN = 200  # seconds: RabbitMQ's first start on a loaded machine
AGAIN_WITHIN = 20  # seconds: a service that is up answers again at once


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
        all_running(name, wanted)
        yield name, wanted
    finally:
        # podman-compose 1.0.3's `down` leaves the containers' anonymous volumes
        # (the workers' caches) and the project's network: removed here
        left = listed(name, "{{.ID}}", every=True)
        if left:
            podman("rm", "--force", "--volumes", "--time", "10", *left, timeout=300)
        compose(name, "down", "--volumes", timeout=300)
        podman("network", "rm", f"{name}_default", check=False)


def listed(project: str, fmt: str, *filters: str, every: bool = False) -> list[str]:
    """`podman ps` of the project's containers (`every`: in any state), one `fmt` each."""
    return podman(
        "ps", *(["--all"] if every else []),
        "--filter", f"label=io.podman.compose.project={project}", *filters, "--format", fmt,
    ).stdout.split()  # fmt: skip


def containers(project: str, service: str, *, every: bool = False) -> list[str]:
    """The names of a service's running containers (`every`: in any state)."""
    service_label = f"label=com.docker.compose.service={service}"
    return listed(project, "{{.Names}}", "--filter", service_label, every=every)


def running(project: str) -> set[str]:
    """The services that have a running container."""
    return set(listed(project, '{{ index .Labels "com.docker.compose.service" }}'))


def until_true(what: str, check: Callable[[], bool], within: float = UP_WITHIN) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)  # state inside containers: polled, no event to wait on
    raise AssertionError(f"{what}: not within {within}s")


def all_running(project: str, wanted: list[str], within: float = 60) -> None:
    """Wait until every wanted service has a running container; else fail with their logs.

    podman-compose exits 0 even when a container could not start (it stays
    Created, for instance when the bridge network cannot be set up).
    """
    try:
        until_true("every service running", lambda: running(project) >= set(wanted), within)
    except AssertionError as exc:
        missing = sorted(set(wanted) - running(project))
        report = [f"{exc}: {missing}"]
        for service in missing:
            for container in containers(project, service, every=True):
                state = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
                logs = podman("logs", container, check=False)
                report.append(
                    f"--- {container} ({state.stdout.strip()}):\n{logs.stdout}{logs.stderr}"
                )
        raise AssertionError("\n".join(report)) from None


def resolves(project: str, service: str, name: str) -> bool:
    """Whether every container of `service` resolves `name` now."""
    look_up = f"import socket; socket.getaddrinfo({name!r}, 80)"
    return all(
        podman("exec", container, "python", "-c", look_up, check=False).returncode == 0
        for container in containers(project, service)
    )


def consumers(project: str, queue: str = "previewer.render") -> int:
    """The job queue's consumer count, from rabbitmqctl inside the RabbitMQ container."""
    [broker] = containers(project, "rabbitmq")
    listed = podman(
        "exec", broker, "rabbitmqctl", "-q", "list_queues", "-p", "previewer", "name", "consumers",
        check=False, timeout=60,
    ).stdout  # fmt: skip
    for line in listed.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0] == queue and fields[1].isdigit():
            return int(fields[1])
    return 0


# func_only: the image build and `compose up` are the fixture's, bounded by their own timeouts
@pytest.mark.timeout(3 * UP_WITHIN + 60, func_only=True)
@pytest.mark.parametrize("project", [None], indirect=True, ids=["default"])
def test_the_default_profile_serves_a_preview_from_the_demo_origin(
    project: tuple[str, list[str]],
) -> None:
    name, wanted = project
    assert set(wanted) == {"previewer", "origin"}
    started = time.monotonic()
    until_true("previewer resolves origin", lambda: resolves(name, "previewer", "origin"))
    status, headers = answer("http://127.0.0.1:8080" + PREVIEW, UP_WITHIN)
    record(
        "compose up, default profile: up to the first preview",
        f"{time.monotonic() - started:.1f} s",
    )
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert running(name) == set(wanted)


@pytest.mark.timeout(3 * UP_WITHIN + 60, func_only=True)
@pytest.mark.parametrize("project", ["broker"], indirect=True, ids=["broker"])
def test_the_broker_profile_serves_a_preview_through_the_fronts_nginx(
    project: tuple[str, list[str]],
) -> None:
    name, wanted = project
    assert {"rabbitmq", "worker", "front-1", "front-2", "balancer"} <= set(wanted)
    started = time.monotonic()
    until_true("the workers resolve origin", lambda: resolves(name, "worker", "origin"))
    until_true("two workers consume the job queue", lambda: consumers(name) == 2)
    status, headers = answer("http://127.0.0.1:8081" + PREVIEW, UP_WITHIN)
    record(
        "compose up, broker profile: up to the first preview", f"{time.monotonic() - started:.1f} s"
    )
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert answer("http://127.0.0.1:8081" + PREVIEW, AGAIN_WITHIN)[1]["X-Cache"] == "HIT"
    assert answer("http://127.0.0.1:8080" + PREVIEW, AGAIN_WITHIN)[0] == 200  # the default's too
    assert running(name) == set(wanted)
