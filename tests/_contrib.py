"""What the deployment files under contrib/ (and the Dockerfile) name: routes, metrics, configs.

Shared by the structural tests (tests/unit/test_contrib_*.py) and the ones that hold those
names against a real daemon (tests/e2e/test_operations_stack.py).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTRIB = ROOT / "contrib"
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = CONTRIB / "compose.yaml"
KUBERNETES = CONTRIB / "kubernetes"
ALERTS = CONTRIB / "prometheus" / "alerts.yml"
DASHBOARD = CONTRIB / "grafana" / "qsysd.json"
OPERATIONS = ROOT / "docs" / "operations.md"

#: The routes the deployment files name; tests/e2e holds each against a running daemon.
REAL_ROUTES = {"/health", "/ready", "/metrics"}

_METRIC = re.compile(r"\bqsysd_[a-z0-9_]+\b")
_URL_PATH = re.compile(r"https?://[^/'\"\s]+(/[A-Za-z0-9_./-]*)")


def load_yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def metrics_in(expr: str) -> set[str]:
    """The qsysd metric names a PromQL expression reads (recording rules have a colon)."""
    return set(_METRIC.findall(expr))


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def referenced_metrics() -> dict[str, set[str]]:
    """Every qsysd metric the alert rules and the dashboard read, by where it is read."""
    alerts = [metrics_in(r["expr"]) for r in alert_rules()]
    panels = [metrics_in(e) for e in dashboard_exprs()]
    return {
        "contrib/prometheus/alerts.yml": set().union(*alerts),
        "contrib/grafana/qsysd.json": set().union(*panels),
    }


def exported_names(exposition: str) -> set[str]:
    """Names a Prometheus text exposition offers: families (TYPE lines) and their samples."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def exported_families(exposition: str) -> set[str]:
    """The metric family names (as exposed: counters with ``_total``) of an exposition."""
    return {line.split()[2] for line in exposition.splitlines() if line.startswith("# TYPE ")}


def documented_metrics() -> set[str]:
    """The metric names in docs/operations.md's metric reference table."""
    return set(re.findall(r"^\| `(qsysd_[a-z0-9_]+)` \|", _section("Metric reference"), re.M))


def documented_log_events() -> set[str]:
    """The event names in docs/operations.md's log reference tables."""
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_.]+)` \|", _section("Log reference"), re.M))


def _section(title: str) -> str:
    text = OPERATIONS.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or (stripped.startswith("#") and not pending):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    out = []
    for line in lines:
        instruction, _, arguments = line.partition(" ")
        out.append((instruction.upper(), arguments.strip()))
    return out


def paths_in_command(command: str | list[str]) -> set[str]:
    """HTTP paths of loopback URLs inside a command (a probe's or a health check's)."""
    text = command if isinstance(command, str) else " ".join(command)
    return set(_URL_PATH.findall(text))


def split_command(value: str | list[str]) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else list(value)


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, one list per stage (each starting with its FROM)."""
    out: list[list[tuple[str, str]]] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            out.append([])
        out[-1].append((instruction, arguments))
    return out


def image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage."""
    env: dict[str, str] = {}
    for instruction, arguments in dockerfile_stages()[-1]:
        if instruction == "ENV":
            env.update(dict(pair.split("=", 1) for pair in arguments.split()))
    return env
