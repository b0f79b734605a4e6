"""The GitHub workflows: the jobs the project promises, on the Pythons it supports."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml
from _contrib import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    return data


def runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_ci_lints_types_tests_every_supported_python_audits_and_smokes_the_image() -> None:
    jobs = workflow("ci.yml")["jobs"]
    assert {"lint", "types", "test", "audit", "image"} <= set(jobs)
    assert "ruff check ." in runs(jobs["lint"]) and "ruff format --check ." in runs(jobs["lint"])
    assert "hadolint Dockerfile" in runs(jobs["lint"])
    assert "mypy" in runs(jobs["types"])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lowest = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert lowest is not None
    matrix = jobs["test"]["strategy"]["matrix"]["python"]
    assert matrix[0] == f"3.{lowest.group(1)}" and matrix == ["3.11", "3.12", "3.13"]
    assert "python -m pytest" in runs(jobs["test"])
    assert "pip-audit" in runs(jobs["audit"])
    image = jobs["image"]
    assert any(u.startswith("docker/build-push-action@") for u in uses(image))
    assert "scripts/smoke http://127.0.0.1:8765" in runs(image)
    assert "contrib/compose.yaml" in str(image["env"])


def test_release_publishes_dist_and_image_with_provenance() -> None:
    spec = workflow("release.yml")
    # PyYAML reads the key `on` as True.
    trigger = spec.get("on", spec.get(True))
    assert trigger["push"]["tags"] == ["v*"]
    jobs = spec["jobs"]
    assert "python -m build" in runs(jobs["dist"])
    for job in jobs.values():
        assert job["permissions"]["id-token"] == "write"
        assert any(u.startswith("actions/attest-build-provenance@") for u in uses(job))
    image = jobs["image"]
    assert image["permissions"]["packages"] == "write"
    (push,) = [s for s in image["steps"] if s.get("uses", "").startswith("docker/build-push-")]
    assert push["with"]["push"] is True and push["with"]["provenance"] == "mode=max"
    login = next(s for s in image["steps"] if s.get("uses", "").startswith("docker/login-"))
    assert login["with"]["registry"] == "ghcr.io"
    # Top-level permissions stay read-only; jobs ask for what they need.
    assert spec["permissions"] == {"contents": "read"}
