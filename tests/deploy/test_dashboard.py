"""The metric contract (deploy/metrics.txt) and the Grafana dashboard that
queries it: every series a panel asks for is in the contract, with its labels."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from deploy_files import REPO

import metric_contract

DASHBOARD = REPO / "deploy" / "grafana" / "previewer.json"
# PromQL words that are not series names (functions are known by their "(").
KEYWORDS = {"bool", "offset", "and", "or", "unless", "inf", "nan"}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "group", "stddev", "stdvar"}
AGGREGATIONS |= {"topk", "bottomk", "quantile", "count_values"}
GROUPINGS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# labels every scraped series carries besides its own
TARGET_LABELS = {"instance", "job", "pod", "namespace"}
IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
TOKEN = re.compile(rf"\{{[^}}]*\}}|\[[^\]]*\]|{IDENT}|[0-9.]+|\S")


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def expressions() -> list[str]:
    return [t["expr"] for p in panels(dashboard()["panels"]) for t in p.get("targets", [])]


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(series name, label names it is matched on or grouped by) for each series in `expr`.

    A small PromQL reader: enough for the dashboard's expressions, and strict
    enough to see every series they name. Grouping labels (by, on, ...) are
    held against every series of the expression, which is stricter than
    PromQL needs."""
    tokens = TOKEN.findall(expr)
    grouping: set[str] = set()
    series: list[tuple[str, set[str]]] = []
    i = 0
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in GROUPINGS and following == "(":
            close = tokens.index(")", i)
            grouping |= {t for t in tokens[i + 2 : close] if re.fullmatch(IDENT, t)}
            i = close + 1
            continue
        is_series = re.fullmatch(IDENT, token) and token not in KEYWORDS | AGGREGATIONS
        if is_series and following != "(":
            labels = set()
            if following.startswith("{"):
                labels = set(re.findall(rf"({IDENT})\s*(?:=~|!~|!=|=)", following))
            series.append((token, labels))
        i += 1
    return [(name, labels | grouping) for name, labels in series]


def test_contract_is_well_formed() -> None:
    metrics = metric_contract.load()
    assert len(metrics) == 23
    for name, metric in metrics.items():
        assert re.fullmatch(r"previewer_[a-z0-9_]+", name)
        assert name.endswith("_total") == (metric.type == "counter"), name
        if metric.type == "histogram":
            assert name.endswith("_seconds")
        assert not metric.labels & {"url", "host", "source", "path", "key"}, "unbounded labels"
        if name.startswith("previewer_broker_"):
            assert "embedded" not in metric.exported_by


def test_contract_is_documented_in_operations() -> None:
    text = (REPO / "docs" / "operations.md").read_text()
    for name, metric in metric_contract.load().items():
        assert f"`{name}`" in text, f"{name} is not in docs/operations.md"
        for label in metric.labels:
            assert label in text


def test_parser_rejects_a_malformed_contract() -> None:
    with pytest.raises(ValueError, match="5 fields"):
        metric_contract.parse("previewer_x_total | counter | - | embedded\n")
    with pytest.raises(ValueError, match="unknown type"):
        metric_contract.parse("previewer_x | summary | - | embedded | a\n")
    with pytest.raises(ValueError, match="unknown process"):
        metric_contract.parse("previewer_x | gauge | - | sidecar | a\n")


def test_selector_extraction_finds_series_and_their_labels() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le, phase) (rate(previewer_miss_phase_seconds_bucket"
        '{phase!="store", cache=~"x"}[$__rate_interval]))) / on (job) up'
    )
    assert selectors(expr) == [
        ("previewer_miss_phase_seconds_bucket", {"le", "phase", "cache", "job"}),
        ("up", {"le", "phase", "job"}),
    ]
    assert selectors("sum(rate(previewer_nonexistent_total[5m])) / 2") == [
        ("previewer_nonexistent_total", set())
    ]


def test_every_queried_series_and_label_is_in_the_contract() -> None:
    contract = metric_contract.series()
    exprs = expressions()
    assert len(exprs) > 20
    for expr in exprs:
        found = selectors(expr)
        assert found, f"no series in {expr!r}"
        for name, labels in found:
            assert name in contract, f"{name} (in {expr!r}) is not in deploy/metrics.txt"
            unknown = labels - contract[name] - TARGET_LABELS
            assert not unknown, f"{name} has no label {unknown} (in {expr!r})"


@pytest.mark.parametrize(
    ("panel", "metrics"),
    [
        ("Request rate by status class", {"previewer_requests_total"}),
        ("Errors by code", {"previewer_requests_total"}),
        ("Hit latency p50 / p99", {"previewer_request_duration_seconds_bucket"}),
        ("Miss latency p50 / p99", {"previewer_request_duration_seconds_bucket"}),
        ("Cache hit ratio", {"previewer_cache_requests_total"}),
        ("Cache bytes", {"previewer_cache_bytes"}),
        ("Renders in progress and waiting", {"previewer_renders_in_progress"}),
        ("503s by reason", {"previewer_overloaded_total"}),
        ("Queue depth", {"previewer_broker_queue_depth"}),
        ("Redeliveries", {"previewer_broker_redeliveries_total"}),
    ],
)
def test_dashboard_has_the_operators_panels(panel: str, metrics: set[str]) -> None:
    (found,) = [p for p in panels(dashboard()["panels"]) if p["title"] == panel]
    queried = {name for t in found["targets"] for name, _ in selectors(t["expr"])}
    assert metrics <= queried
    if "p50 / p99" in panel:
        quantiles = {
            re.search(r"histogram_quantile\(([0-9.]+)", t["expr"]).group(1)  # type: ignore[union-attr]
            for t in found["targets"]
        }
        assert quantiles == {"0.5", "0.99"}


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    items = list(panels(dashboard()["panels"]))
    ids = [p["id"] for p in items]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in items:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{p['title']} overlaps another panel"
        cells |= area
    for p in items:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
