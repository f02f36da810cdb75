"""compose.yaml as docker-compose 1.29 resolves it (`config`, no engine, no
network): both profiles, the cache volumes, the health checks, the demo origin."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from deploy_files import REPO, documented_settings

BROKER_SERVICES = {"rabbitmq", "worker", "front-1", "front-2", "balancer"}
CACHE = "/var/cache/previewer"


def compose(*args: str, directory: Path = REPO) -> subprocess.CompletedProcess[str]:
    """docker-compose in a network namespace of its own, with no engine to reach."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: run scripts/install-system-deps.sh"
    env = {"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    return subprocess.run(
        ["unshare", "--map-root-user", "--net", binary, "-f", "compose.yaml", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@functools.cache
def resolved() -> dict[str, Any]:
    """The broker profile's resolved configuration (a superset of the default one)."""
    result = compose("--profile", "broker", "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> source (a volume name or an absolute path); 1.29 prints `src:dst:mode`."""
    result = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        result[target] = source
    return result


def test_compose_file_is_valid_offline_in_both_profiles() -> None:
    for args in ((), ("--profile", "broker")):
        result = compose(*args, "config", "-q")
        assert result.returncode == 0, result.stderr


def test_an_invalid_compose_file_is_refused(tmp_path: Path) -> None:
    broken = (REPO / "compose.yaml").read_text().replace("replicas: 2", "replicas: two")
    assert broken != (REPO / "compose.yaml").read_text()
    (tmp_path / "compose.yaml").write_text(broken)
    result = compose("--profile", "broker", "config", "-q", directory=tmp_path)
    assert result.returncode != 0
    assert "replicas" in result.stderr


def test_embedded_default_is_one_service_with_its_cache_volume_and_a_demo_origin() -> None:
    services = resolved()["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"previewer", "origin"}
    previewer = services["previewer"]
    assert mounts(previewer)[CACHE] == "previewer-cache"
    assert "previewer-cache" in resolved()["volumes"]
    assert previewer["command"] == ["serve"]
    assert previewer["ports"] == [{"published": 8080, "target": 8080}]
    origin_root = mounts(services["origin"])["/usr/share/nginx/html"]
    images = sorted(Path(origin_root).iterdir())
    assert {path.suffix for path in images} >= {".jpg", ".png", ".webp"}
    assert all(path.stat().st_size < 32_000 for path in images), "demo images stay tiny"


def test_broker_profile_runs_rabbitmq_workers_and_two_fronts_behind_nginx() -> None:
    services = resolved()["services"]
    assert {n for n, s in services.items() if s.get("profiles") == ["broker"]} == BROKER_SERVICES
    rabbit = services["rabbitmq"]
    assert "rabbitmq-diagnostics" in rabbit["healthcheck"]["test"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    volumes = set()
    for front in ("front-1", "front-2"):
        service = services[front]
        assert service["command"] == ["serve"]
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["environment"]["PREVIEWER_BROKER"].startswith("amqp://")
        volumes.add(mounts(service)[CACHE])
    assert len(volumes) == 2, "each front keeps its own cache"
    balancer = services["balancer"]
    conf = mounts(balancer)["/etc/nginx/conf.d/default.conf"]
    assert Path(conf) == REPO / "deploy" / "nginx" / "fronts.conf"
    assert re.search(r"hash \$request_uri consistent;", Path(conf).read_text())


def test_every_image_is_pinned_and_every_setting_is_documented() -> None:
    known = documented_settings()
    for name, service in resolved()["services"].items():
        image = service["image"]
        assert re.search(r":\d+\.\d+\.\d+", image) or image == "previewer:local", image
        assert "latest" not in image
        for variable in service.get("environment", {}):
            if variable.startswith("PREVIEWER_"):
                assert variable in known, f"{name}: {variable} is no setting"


def test_compose_check_and_container_check_are_part_of_make_test() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None
    assert re.search(r"\bcompose-check\b", recipe.group(1))
    assert re.search(r"\bcontainer-check\b", recipe.group(1))  # compose brought up (podman)
    assert "docker-compose -f compose.yaml config -q" in makefile
    deps = (REPO / "scripts" / "install-system-deps.sh").read_text()
    assert "need+=(docker-compose)" in deps
