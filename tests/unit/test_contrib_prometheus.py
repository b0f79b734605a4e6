"""The alert rules pass promtool's checks and unit tests; the dashboard is well formed.

That every metric they read is exported is checked against a real daemon in
tests/e2e/test_operations_stack.py.
"""

from __future__ import annotations

import subprocess

from _contrib import ALERTS, alert_rules, dashboard, metrics_in
from _services import require_service

#: What the alerts must cover (docs/operations.md#alerts).
ALERTS_REQUIRED = {
    "QsysdHighErrorRate": "qsysd_requests_total",
    "QsysdSlowRequests": "qsysd_request_duration_seconds_bucket",
    "QsysdCoreDisconnected": "qsysd_core_connected",
    "QsysdCoreBreakerOpen": "qsysd_core_breaker_state",
    "QsysdNotReady": "qsysd_ready",
    "QsysdSnapshotFailing": "qsysd_snapshot_failures_total",
    "QsysdJournalFailing": "qsysd_journal_flush_failures_total",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_service("promtool", how="apt-get install prometheus")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, cwd=ALERTS.parent
    )


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_required_alert_exists_over_its_metric() -> None:
    rules = {r["alert"]: r for r in alert_rules() if "alert" in r}
    recorded = {r["record"]: r["expr"] for r in alert_rules() if "record" in r}
    for name, metric in ALERTS_REQUIRED.items():
        expr = rules[name]["expr"]
        for record, definition in recorded.items():
            expr = expr.replace(record, definition)
        assert metric in metrics_in(expr), f"{name} does not read {metric}"
        assert rules[name]["labels"]["severity"] in ("warning", "critical")
        assert rules[name]["annotations"]["summary"]


def test_every_alert_has_a_promtool_test() -> None:
    tested = (ALERTS.parent / "alerts_test.yml").read_text()
    for rule in alert_rules():
        if "alert" in rule:
            assert f"alertname: {rule['alert']}" in tested, rule["alert"]


def test_the_dashboard_reads_one_chosen_prometheus_and_lays_out_cleanly() -> None:
    board = dashboard()
    assert board["uid"] == "qsysd"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert metrics_in(target["expr"]), f"{panel['title']}: {target['expr']}"
            assert 'instance=~"$instance"' in target["expr"], panel["title"]
