"""Prometheus rules: promtool accepts them, and their unit tests cover every alert both ways."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.external import require_program

RULES_DIR = Path(__file__).resolve().parent.parent / "dashboards" / "prometheus"
RULES = RULES_DIR / "certmon-rules.yaml"
RULE_TESTS = RULES_DIR / "certmon-rules.test.yaml"
RECORD_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")  # level:metric:operation
GROUPING = re.compile(r"\b(by|on)\s*\(([^)]*)\)")  # the label list of an aggregation or a vector match


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load(RULES)["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_program("promtool"), *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_check_rules_accepts_the_rules_file() -> None:
    """`promtool check rules` parses every expression and finds no duplicate rule."""
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes: each alert fires and stays quiet exactly when its test says."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Each alert name appears in a test that expects it to fire and in one that expects silence."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts >= {
        "CertmonIncidentAtRisk", "CertmonIncidentBreached", "CertmonObjectiveBreached", "CertmonSnapshotStale",
        "CertmonDown",
    }  # fmt: skip
    assert alerts - fires == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"


def test_recording_rules_are_named_level_metric_operation_and_alerts_carry_urgency() -> None:
    """Recorded series follow the level:metric:operation convention; every alert says page or ticket."""
    for rule in rules():
        if "record" in rule:
            assert RECORD_NAME.fullmatch(rule["record"]), rule["record"]
        else:
            assert rule["labels"]["urgency"] in ("page", "ticket"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_compose_prometheus_configuration_is_valid_with_the_rules(tmp_path: Path) -> None:
    """The Prometheus configuration compose.yaml mounts passes `promtool check config` with the rules in place."""
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    shutil.copy(RULES, rules_dir / RULES.name)
    config = (RULES_DIR / "prometheus.yml").read_text(encoding="utf-8")
    config = config.replace("/etc/prometheus/rules/", f"{rules_dir}/")
    # The scrape token, where compose's metrics-token service leaves it.
    (tmp_path / "metrics-token").write_text("certmon_test\n", encoding="utf-8")
    config = config.replace("/etc/prometheus/certmon/", f"{tmp_path}/")
    (tmp_path / "prometheus.yml").write_text(config, encoding="utf-8")
    result = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_sla_rule_sums_or_matches_across_objectives() -> None:
    """Every aggregation and vector match over SLA series keeps `objective`: an incident counts once per objective,
    so a sum without it would add the KPI to the other objectives' clocks."""
    checked = 0
    for rule in rules():
        expr = rule["expr"]
        if "sla" not in expr:
            continue
        for kind, labels in GROUPING.findall(expr):
            assert "objective" in {label.strip() for label in labels.split(",")}, (rule.get("record"), kind, expr)
            checked += 1
    assert checked > 20


def test_kpi_alerts_select_the_kpi_objective_by_its_info_series_not_its_name() -> None:
    """The paging SLA alerts speak of the KPI whatever the policy calls it: they join certmon_sla_objective_info."""
    for rule in rules():
        if rule.get("alert", "").startswith(("CertmonIncident", "CertmonAgency", "CertmonNational")):
            assert 'certmon:sla_objective_info:max{kpi="true"}' in rule["expr"], rule["alert"]
            assert "notify" not in rule["expr"], rule["alert"]
