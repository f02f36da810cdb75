"""The metric contract, read from deploy/metrics.txt.

One list of the Prometheus metrics previewer exports, shared by the tests that
check the Grafana dashboard and the ones that read a live /metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONTRACT = Path(__file__).resolve().parent.parent / "deploy" / "metrics.txt"
TYPES = ("counter", "gauge", "histogram")
PROCESSES = ("embedded", "front", "worker")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: frozenset[str]
    exported_by: frozenset[str]
    meaning: str

    @property
    def series(self) -> dict[str, frozenset[str]]:
        """Series name -> its label names, as they appear in /metrics and in queries."""
        if self.type != "histogram":
            return {self.name: self.labels}
        return {
            self.name + "_bucket": self.labels | {"le"},
            self.name + "_sum": self.labels,
            self.name + "_count": self.labels,
        }


def parse(text: str) -> dict[str, Metric]:
    metrics: dict[str, Metric] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(" | ")]
        if len(fields) != 5:
            raise ValueError(f"metrics.txt:{number}: expected 5 fields, got {len(fields)}")
        name, kind, labels, exported_by, meaning = fields
        if kind not in TYPES:
            raise ValueError(f"metrics.txt:{number}: unknown type {kind!r}")
        processes = frozenset(exported_by.split(","))
        if not processes or not processes <= set(PROCESSES):
            raise ValueError(f"metrics.txt:{number}: unknown process in {exported_by!r}")
        if name in metrics:
            raise ValueError(f"metrics.txt:{number}: {name} listed twice")
        label_set = frozenset() if labels == "-" else frozenset(labels.split(","))
        metrics[name] = Metric(name, kind, label_set, processes, meaning)
    return metrics


def load() -> dict[str, Metric]:
    return parse(CONTRACT.read_text())


def series() -> dict[str, frozenset[str]]:
    """Every series name of the contract -> its label names."""
    return {name: labels for metric in load().values() for name, labels in metric.series.items()}
