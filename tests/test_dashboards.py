"""Grafana dashboards, their provisioning and compose.yaml, checked by reading them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from certmon.core.policy import load_policy
from tests.external import require_program

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "dashboards" / "grafana"
PROVISIONING = GRAFANA / "provisioning"
PROMETHEUS = REPO / "dashboards" / "prometheus"


def dashboards() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(GRAFANA.glob("*.json"))}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those folded inside rows."""
    found = []
    for panel in board.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def provisioned_datasource() -> dict[str, Any]:
    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text(encoding="utf-8"))
    (datasource,) = config["datasources"]
    return dict(datasource)


def test_every_dashboard_has_a_unique_uid_and_every_panel_a_query() -> None:
    """Grafana needs unique uids; a panel without a Prometheus query would show nothing."""
    boards = dashboards()
    assert {"sla-overview.json", "sla-agency.json"} <= set(boards)
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == len(uids)
    for name, board in boards.items():
        for panel in panels(board):
            if panel["type"] in ("row", "text"):
                continue
            exprs = [t.get("expr") for t in panel.get("targets", [])]
            assert exprs and all(exprs), f"{name}: panel {panel['title']!r} has no query"


def test_panels_use_the_provisioned_datasource_or_the_datasource_variable() -> None:
    """Each panel reads the provisioned Prometheus, directly by uid or through a datasource variable."""
    uid = provisioned_datasource()["uid"]
    for name, board in dashboards().items():
        variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
        for panel in panels(board):
            for item in (panel, *panel.get("targets", [])):
                source = item.get("datasource")
                if source is None:
                    continue
                assert source["type"] == "prometheus", f"{name}: {panel['title']}"
                assert source["uid"] in (uid, "${datasource}"), f"{name}: {panel['title']}"
                if source["uid"] == "${datasource}":
                    assert variables["datasource"]["type"] == "datasource"


def test_compliance_panels_colour_by_the_policy_green_yellow_red_thresholds() -> None:
    """Red below 20 % short of target, yellow up to 5 % short, green from there: the default policy's colours."""
    policy = load_policy(None)
    expected = [
        {"color": "red", "value": None},
        {"color": "yellow", "value": round(policy.compliance_target * (1 - policy.yellow_max_shortfall), 6)},
        {"color": "green", "value": round(policy.compliance_target * (1 - policy.green_max_shortfall), 6)},
    ]
    checked = 0
    for name in ("sla-overview.json", "sla-agency.json"):
        for panel in panels(dashboards()[name]):
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            if panel["title"].startswith("Compliance") and panel["type"] in ("stat", "bargauge"):
                assert defaults["thresholds"]["steps"] == expected, f"{name}: {panel['title']}"
                assert defaults["unit"] == "percentunit"
                checked += 1
    assert checked >= 5


def test_compose_mounts_existing_files_where_grafana_and_prometheus_look_for_them() -> None:
    """compose.yaml's bind mounts exist, and land where the provisioning and prometheus.yml expect them."""
    compose = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"postgres", "certmon-1", "certmon-2", "prometheus", "alertmanager", "grafana"} <= set(services)
    mounts: dict[str, str] = {}
    for service in services.values():
        for volume in service.get("volumes", []):
            source, target, *_ = volume.split(":")
            if source.startswith("./"):
                assert (REPO / source).exists(), source
                mounts[target] = source
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "certmon.yaml").read_text(encoding="utf-8"))
    assert mounts[provider["providers"][0]["options"]["path"]] == "./dashboards/grafana"
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/grafana/provisioning"
    prometheus = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    for rule_file in prometheus["rule_files"]:
        assert (REPO / mounts[rule_file]).is_file()
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["certmon-1:8080", "certmon-2:8080"]
    assert prometheus["scrape_configs"][0]["job_name"] == "certmon"  # CertmonDown looks for this job
    assert provisioned_datasource()["url"] == "http://prometheus:9090"


def test_alertmanager_configuration_is_valid() -> None:
    """`amtool check-config` accepts the Alertmanager configuration compose.yaml mounts."""
    amtool = require_program("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(PROMETHEUS / "alertmanager.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
