"""deploy/kubernetes, both modes: every object validated offline against the
Kubernetes schemas kubernetes-validate ships, the KEDA objects against the
schema in deploy/kubernetes/schemas/, and the references between them checked."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from deploy_files import REPO, documented_settings, no_network

from previewer import __version__
from previewer.config.settings import load, parse_bytes

KUBERNETES = REPO / "deploy" / "kubernetes"
# An older release still common in managed clusters (the manifests use nothing
# newer) and the newest that the installed kubernetes-validate knows.
VERSIONS = ("1.30", kubernetes_validate.latest_version())
QUEUE = "previewer.render"

__all__ = ["no_network"]  # a fixture, used by name below


def build(directory: Path) -> list[dict[str, Any]]:
    """The objects a `kubectl apply -k directory` would create (resources only:
    the layout uses no patches, so following `resources` is the whole build)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for entry in kustomization["resources"]:
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


@functools.cache
def mode(name: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(obj["kind"], obj["metadata"]["name"]): obj for obj in build(KUBERNETES / name)}


def keda_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (KUBERNETES / "schemas" / "keda.sh-v1alpha1.schema.json").read_text()
    )
    return schema


def check(obj: dict[str, Any], version: str) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.Draft202012Validator(keda_schema()).validate(obj)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["base", "broker"])
def test_every_object_is_valid_offline(name: str, version: str) -> None:
    objects = mode(name)
    assert objects
    for obj in objects.values():
        check(obj, version)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("kind", "name", "path", "value"),
    [
        (
            "Deployment",
            "previewer-front",
            ["spec", "template", "spec", "containers", 0, "portz"],
            [],
        ),
        ("Deployment", "previewer-front", ["spec", "replicas"], "two"),
        ("HorizontalPodAutoscaler", "previewer-front", ["spec", "maxReplicas"], None),
        ("ScaledObject", "previewer-worker", ["spec", "triggers"], []),
        ("ScaledObject", "previewer-worker", ["spec", "triggers", 0, "metadata", "mode"], "Length"),
        ("ScaledObject", "previewer-worker", ["spec", "scaleTargetRef", "nmae"], "x"),
        (
            "TriggerAuthentication",
            "previewer-rabbitmq",
            ["spec", "secretTargetRef", 0, "key"],
            None,
        ),
    ],
)
def test_a_broken_object_is_refused(kind: str, name: str, path: list[Any], value: Any) -> None:
    obj = copy.deepcopy(mode("broker")[(kind, name)])
    parent = obj
    for step in path[:-1]:
        parent = parent[step]
    if value is None:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        check(obj, VERSIONS[-1])


def test_base_is_the_embedded_mode_and_broker_adds_the_workers() -> None:
    base, broker = set(mode("base")), set(mode("broker"))
    assert base == {
        ("ConfigMap", "previewer"),
        ("Deployment", "previewer-front"),
        ("Service", "previewer"),
        ("PodDisruptionBudget", "previewer-front"),
        ("HorizontalPodAutoscaler", "previewer-front"),
    }
    assert broker - base == {
        ("Secret", "previewer-broker"),
        ("Deployment", "previewer-worker"),
        ("ScaledObject", "previewer-worker"),
        ("TriggerAuthentication", "previewer-rabbitmq"),
    }


def settings() -> dict[str, str]:
    data: dict[str, str] = mode("base")[("ConfigMap", "previewer")]["data"]
    return data


def pod(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = mode("broker")[("Deployment", name)]["spec"]["template"]["spec"]
    return spec


def container(name: str) -> dict[str, Any]:
    (only,) = pod(name)["containers"]
    result: dict[str, Any] = only
    return result


def test_configmap_holds_valid_documented_settings() -> None:
    data = settings()
    assert all(isinstance(value, str) for value in data.values())
    assert set(data) <= documented_settings()
    loaded = load(data)  # the service accepts every value
    assert str(loaded.cache.dir) == "/var/cache/previewer"
    for name in ("previewer-front", "previewer-worker"):
        assert container(name)["envFrom"] == [{"configMapRef": {"name": "previewer"}}]


def test_front_probes_drain_and_grace_period_fit_together() -> None:
    front, spec = container("previewer-front"), pod("previewer-front")
    ports = {port["name"]: port["containerPort"] for port in front["ports"]}
    assert ports["http"] == int(settings()["PREVIEWER_PORT"])
    assert front["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert front["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    command = front["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(command[1])
    shutdown = float(settings()["PREVIEWER_SHUTDOWN_TIMEOUT"])
    # the grace period counts from the preStop hook: sleep, SIGTERM, requests in flight
    assert spec["terminationGracePeriodSeconds"] >= drain + shutdown + 2
    assert front["args"] == ["serve"]


def test_worker_gets_time_to_finish_its_jobs_and_the_broker_url() -> None:
    worker, spec = container("previewer-worker"), pod("previewer-worker")
    assert worker["args"] == ["worker"]
    assert spec["terminationGracePeriodSeconds"] >= float(settings()["PREVIEWER_REQUEST_TIMEOUT"])
    (broker,) = [env for env in worker["env"] if env["name"] == "PREVIEWER_BROKER"]
    ref = broker["valueFrom"]["secretKeyRef"]
    secret = mode("broker")[("Secret", ref["name"])]
    assert ref["key"] in secret["stringData"]
    assert secret["stringData"][ref["key"]].startswith("amqp://")
    assert "optional" not in ref, "a worker cannot run without a broker"
    (front_broker,) = [
        e for e in container("previewer-front")["env"] if e["name"] == "PREVIEWER_BROKER"
    ]
    assert front_broker["valueFrom"]["secretKeyRef"]["optional"] is True


def test_resources_and_cache_volumes_are_sized_for_the_settings() -> None:
    data = settings()
    for name, needed in (
        ("previewer-front", parse_bytes(data["PREVIEWER_CACHE_SIZE"])),
        ("previewer-worker", parse_bytes(data["PREVIEWER_SOURCE_CACHE_SIZE"])),
    ):
        spec, main = pod(name), container(name)
        requests = main["resources"]["requests"]
        assert float(requests["cpu"]) >= int(data["PREVIEWER_WORKERS"])
        assert "memory" in main["resources"]["limits"]
        (cache,) = [
            m for m in main["volumeMounts"] if m["mountPath"] == data["PREVIEWER_CACHE_DIR"]
        ]
        (volume,) = [v for v in spec["volumes"] if v["name"] == cache["name"]]
        assert quantity(volume["emptyDir"]["sizeLimit"]) > needed
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert main["securityContext"]["readOnlyRootFilesystem"] is True


def quantity(text: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", text)
    assert match, text
    return (
        int(match.group(1))
        * {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[match.group(2)]
    )


def test_service_pdb_and_autoscalers_point_at_the_right_pods() -> None:
    objects = mode("broker")
    front = objects[("Deployment", "previewer-front")]
    labels = front["spec"]["template"]["metadata"]["labels"]
    assert front["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = objects[("Service", "previewer")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    pdb = objects[("PodDisruptionBudget", "previewer-front")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = objects[("HorizontalPodAutoscaler", "previewer-front")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "previewer-front"
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    worker = objects[("Deployment", "previewer-worker")]
    assert worker["spec"]["selector"]["matchLabels"].items() != labels.items()
    scaled = objects[("ScaledObject", "previewer-worker")]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "previewer-worker"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == QUEUE
    auth = objects[("TriggerAuthentication", trigger["authenticationRef"]["name"])]
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    assert (("Secret", ref["name"])) in objects
    assert QUEUE in (REPO / "docs" / "operations.md").read_text()


def test_metrics_are_scraped_from_their_own_port_and_never_through_the_service() -> None:
    metrics_port = int(settings()["PREVIEWER_METRICS_ADDRESS"].rsplit(":", 1)[1])
    for name in ("previewer-front", "previewer-worker"):
        ports = {p["name"]: p["containerPort"] for p in container(name)["ports"]}
        assert ports["metrics"] == metrics_port
        annotations = mode("broker")[("Deployment", name)]["spec"]["template"]["metadata"]
        assert annotations["annotations"]["prometheus.io/port"] == str(metrics_port)
    service = mode("base")[("Service", "previewer")]
    assert all(p["targetPort"] != "metrics" for p in service["spec"]["ports"])


def test_image_is_tagged_with_the_release_never_latest() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "base" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "previewer", "newTag": __version__}]
    for name in ("previewer-front", "previewer-worker"):
        assert container(name)["image"] == "previewer"
    for path in KUBERNETES.rglob("*.yaml"):
        assert ":latest" not in path.read_text(), path
