"""The Dockerfile, parsed: multi-stage, pinned bases, non-root, a cache volume,
a HEALTHCHECK that works against a running service. No engine is needed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Callable
from fnmatch import translate
from pathlib import Path
from typing import Any

import pytest
from deploy_files import REPO
from dockerfile_parse import DockerfileParser

from conftest import ServiceProcess
from origin import free_port
from previewer.config.settings import load

PINNED = re.compile(r"^[a-z0-9./-]+:\d+\.\d+\.\d+[a-z0-9.-]*(@sha256:[0-9a-f]{64})?$")
COMPILERS = ("gcc", "g++", "clang", "build-essential", "make", "cc", "libc6-dev", "rustc")


def stages() -> list[list[dict[str, Any]]]:
    """The Dockerfile's instructions, one list per stage, comments left out."""
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    result: list[list[dict[str, Any]]] = []
    for item in parser.structure:
        if item["instruction"] == "FROM":
            result.append([])
        if item["instruction"] != "COMMENT":
            assert result, "an instruction before the first FROM"
            result[-1].append(item)
    return result


def values(stage: list[dict[str, Any]], instruction: str) -> list[str]:
    return [item["value"] for item in stage if item["instruction"] == instruction]


def runtime_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in values(stages()[-1], "ENV"):
        for pair in shlex.split(value):
            name, _, text = pair.partition("=")
            env[name] = text
    return env


def test_is_multi_stage_and_copies_only_the_venv_into_the_runtime() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    froms = [stage[0]["value"].split() for stage in all_stages]
    assert froms[-1][-2:] == ["AS", "runtime"]
    copies = values(all_stages[-1], "COPY")
    assert copies == ["--from=build /opt/previewer /opt/previewer"]


def test_every_base_image_is_pinned_and_none_is_latest() -> None:
    images = [stage[0]["value"].split()[0] for stage in stages()]
    for image in images:
        assert PINNED.match(image), f"{image} is not pinned to a full version"
    assert len(set(images)) == 1, "the build and runtime stages must share one base"
    assert "latest" not in (REPO / "Dockerfile").read_text().lower()


def test_runtime_stage_installs_no_compiler() -> None:
    for command in values(stages()[-1], "RUN"):
        words = set(re.split(r"[\s;&|]+", command))
        assert not words & set(COMPILERS), command
        assert "apt-get" not in words, "the runtime stage installs no Debian package"


def test_runs_as_a_non_root_user() -> None:
    users = values(stages()[-1], "USER")
    assert users, "the runtime stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_healthcheck_asks_health_with_the_images_python() -> None:
    checks = values(stages()[-1], "HEALTHCHECK")
    assert len(checks) == 1
    assert "NONE" not in checks[0]
    command = healthcheck_command()
    assert command[0] == "python"
    assert "/health" in command[-1]


def healthcheck_command() -> list[str]:
    value = values(stages()[-1], "HEALTHCHECK")[0]
    exec_form = value[value.index("CMD") + len("CMD") :].strip()
    command: list[str] = json.loads(exec_form)
    return command


def test_entrypoint_runs_serve_by_default_and_worker_on_request() -> None:
    runtime = stages()[-1]
    assert [json.loads(v) for v in values(runtime, "ENTRYPOINT")] == [["previewer"]]
    assert [json.loads(v) for v in values(runtime, "CMD")] == [["serve"]]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["previewer"] == "previewer.launch:main"  # launch.py, then cli.py


def test_cache_volume_is_the_configured_cache_dir() -> None:
    volumes = values(stages()[-1], "VOLUME")
    assert volumes == ['["/var/cache/previewer"]']
    settings = load(runtime_env())
    assert str(settings.cache.dir) == "/var/cache/previewer"
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 8080
    assert "8080" in values(stages()[-1], "EXPOSE")[0].split()


def test_healthcheck_passes_on_a_serving_instance_and_fails_without_one(
    service_process: Callable[..., ServiceProcess],
) -> None:
    command = [sys.executable, *healthcheck_command()[1:]]
    proc = service_process([])
    port = proc.url.rsplit(":", 1)[1]
    ok = subprocess.run(command, env={"PREVIEWER_PORT": port}, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    proc.stop()
    refused = subprocess.run(
        command, env={"PREVIEWER_PORT": str(free_port())}, capture_output=True, timeout=30
    )
    assert refused.returncode != 0


# --- .dockerignore: the build context holds what the build copies, and no more ----


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        regex = translate(pattern).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.match(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_build_context_holds_every_copied_file() -> None:
    patterns = dockerignore()
    sources = []
    for stage in stages():
        for value in values(stage, "COPY"):
            if not value.startswith("--from"):
                sources += value.split()[:-1]
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in sources, "pip install . needs the readme pyproject.toml names"
    files = [Path(s) for s in sources]
    files += [p.relative_to(REPO) for p in (REPO / "src").rglob("*.py")]
    for path in files:
        assert (REPO / path).exists(), path
        assert not _ignored(path.as_posix(), patterns), f"{path} is left out of the context"


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        ".previewer-cache/ab/cd",
        "bench/run.py",
        "src/previewer/__pycache__/cli.cpython-311.pyc",
    ],
)
def test_build_context_leaves_out_the_rest(path: str) -> None:
    assert _ignored(path, dockerignore())
