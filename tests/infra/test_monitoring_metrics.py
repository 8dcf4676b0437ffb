"""Monitoring and terraform stay in step with the code.

- Every metric that monitoring/ (alert rules, dashboards) queries is defined in shared/metrics.py.
- Terraform takes topic, subscription, bucket and queue names from shared/topology.yaml instead of
  repeating them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import shared.metrics

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = sorted((ROOT / "monitoring" / "rules").glob("*.yaml"))
DASHBOARD_FILES = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
TERRAFORM_MODULES = ROOT / "terraform" / "modules"
TOPOLOGY_FILE = ROOT / "shared" / "topology.yaml"

# Application metric families are prefixed; platform series such as `up` are not ours to define.
METRIC_RE = re.compile(r"\b((?:http|codex)_[a-zA-Z0-9_]*)")


def collectors() -> list[MetricWrapperBase]:
    return [obj for obj in vars(shared.metrics).values() if isinstance(obj, MetricWrapperBase)]


def defined_metric_names() -> set[str]:
    """Family names from shared.metrics, plus the exported name of every counter."""
    names: set[str] = set()
    for collector in collectors():
        for family in collector.describe():
            names.add(family.name)
            # A Counter family's name drops "_total"; the exported series keeps it.
            if family.type == "counter":
                names.add(f"{family.name}_total")
    return names


def base_name(series: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def rule_expressions() -> Iterator[tuple[str, str]]:
    for path in RULE_FILES:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                yield f"{path.name}:{rule.get('alert') or rule.get('record')}", rule["expr"]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    def walk(node: object, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "prometheusQuery" and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for path in DASHBOARD_FILES:
        yield from walk(json.loads(path.read_text()), path.name)


def referenced(queries: Iterator[tuple[str, str]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for where, query in queries:
        # Label values and matchers ("codex-jobs", route!~"...") are not metric names.
        without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)
        for name in METRIC_RE.findall(without_strings):
            found.setdefault(name, set()).add(where)
    return found


def test_monitoring_files_exist() -> None:
    assert RULE_FILES, "no monitoring/rules/*.yaml"
    assert DASHBOARD_FILES, "no monitoring/dashboards/*.json"


def test_defined_names_include_the_exported_series() -> None:
    defined = defined_metric_names()
    assert "http_requests_total" in defined
    assert "http_request_duration_seconds" in defined
    assert "codex_worker_slots" in defined


@pytest.mark.parametrize(
    ("source", "queries"),
    [("rules", rule_expressions), ("dashboards", dashboard_queries)],
)
def test_every_queried_metric_is_defined(
    source: str, queries: Callable[[], Iterator[tuple[str, str]]]
) -> None:
    used = referenced(queries())
    assert used, f"no metrics found in monitoring {source}"
    defined = defined_metric_names()
    unknown = {
        name: sorted(where) for name, where in used.items() if base_name(name) not in defined
    }
    assert not unknown, f"queried in monitoring/{source}, not in shared/metrics.py: {unknown}"


def test_histograms_are_queried_through_their_series() -> None:
    histograms = {
        family.name
        for collector in collectors()
        for family in collector.describe()
        if family.type == "histogram"
    }
    used = referenced(rule_expressions()) | referenced(dashboard_queries())
    bare = sorted(name for name in used if name in histograms)
    assert not bare, f"histograms must be queried as _bucket/_sum/_count: {bare}"


def terraform_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(TERRAFORM_MODULES.rglob("*.tf"))}


def test_terraform_reads_the_topology_file() -> None:
    readers = [
        path
        for path, text in terraform_sources().items()
        if re.search(r"yamldecode\(file\([^)]*topology\.yaml", text)
    ]
    assert readers, "no terraform module decodes shared/topology.yaml"
    for path in readers:
        text = path.read_text()
        relative = re.search(r'file\("\$\{path\.module\}/([^"]+)"\)', text)
        assert relative, f"{path}: topology path must be relative to path.module"
        assert (path.parent / relative.group(1)).resolve() == TOPOLOGY_FILE


def test_terraform_does_not_hard_code_topology_names() -> None:
    topology = yaml.safe_load(TOPOLOGY_FILE.read_text())
    names = {
        spec["name"]
        for section in ("topics", "subscriptions", "buckets", "queues")
        for spec in topology[section].values()
    }
    assert "codex-jobs" in names
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path, text in terraform_sources().items()
        for name in names
        if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    }
    assert not offenders, f"topology names repeated in terraform: {sorted(offenders)}"


def test_topology_sections_terraform_iterates_are_present() -> None:
    topology = yaml.safe_load(TOPOLOGY_FILE.read_text())
    for section in ("topics", "subscriptions", "buckets", "queues", "firestore"):
        assert topology.get(section), f"topology.yaml lacks {section}"
    for key, spec in topology["topics"].items():
        assert re.fullmatch(r"\d+[dhms]", spec["retention"]), f"topic {key}: bad retention"
    for key, spec in topology["subscriptions"].items():
        assert spec["topic"] in topology["topics"], f"subscription {key}: unknown topic"
        dead_letter = spec.get("dead_letter_topic")
        assert dead_letter is None or dead_letter in topology["topics"], key
