"""The satisfaction dashboard: its queries, run by promtool against the metrics certmon writes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.external import require_program

DASHBOARD = REPO / "dashboards" / "grafana" / "satisfaction.json"
SECURITY, CII = "security-services", "cii-services"

# Two replicas write the same figures; panels must not double them. CII has no answers this month.
SERIES = {
    f'certmon_satisfaction_ratio{{service="{SECURITY}",window="month"}}': 0.86,
    f'certmon_satisfaction_ratio{{service="{SECURITY}",window="fiscal_year"}}': 0.852,
    f'certmon_satisfaction_ratio{{service="{CII}",window="fiscal_year"}}': 0.6,
    f'certmon_satisfaction_responses{{service="{SECURITY}",window="month"}}': 10,
    f'certmon_satisfaction_responses{{service="{SECURITY}",window="fiscal_year"}}': 40,
    f'certmon_satisfaction_responses{{service="{CII}",window="month"}}': 0,
    f'certmon_satisfaction_responses{{service="{CII}",window="fiscal_year"}}': 5,
    f'certmon_satisfaction_target_ratio{{service="{SECURITY}"}}': 0.85,
    f'certmon_satisfaction_target_ratio{{service="{CII}"}}': 0.85,
}

# What each panel shows for SERIES, by panel title and query refId.
EXPECTED: dict[tuple[str, str], dict[str, float]] = {
    ("Satisfaction, fiscal year to date", "A"): {f'{{service="{SECURITY}"}}': 0.852, f'{{service="{CII}"}}': 0.6},
    ("Satisfaction, this month", "A"): {f'{{service="{SECURITY}"}}': 0.86},
    ("Shortfall against target, fiscal year to date", "A"): {
        f'{{service="{SECURITY}"}}': 0.0,  # 85.2 % against 85 %: on target
        f'{{service="{CII}"}}': 1 - 0.6 / 0.85,  # 29.4 % short: red
    },
    ("Satisfaction and target", "A"): {
        f'{{service="{SECURITY}",window="month"}}': 0.86,
        f'{{service="{SECURITY}",window="fiscal_year"}}': 0.852,
        f'{{service="{CII}",window="fiscal_year"}}': 0.6,
    },
    ("Satisfaction and target", "B"): {f'{{service="{SECURITY}"}}': 0.85, f'{{service="{CII}"}}': 0.85},
    ("Responses", "A"): {
        f'{{service="{SECURITY}",window="month"}}': 10,
        f'{{service="{SECURITY}",window="fiscal_year"}}': 40,
        f'{{service="{CII}",window="month"}}': 0,
        f'{{service="{CII}",window="fiscal_year"}}': 5,
    },
}


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def test_every_panel_queries_the_prometheus_datasource_for_satisfaction_metrics() -> None:
    """Panels and the service variable use datasource uid 'prometheus' and only certmon_satisfaction_* metrics."""
    dashboard = load()
    assert dashboard["uid"] == "certmon-satisfaction"
    queries = {(p["title"], t["refId"]): t for p in dashboard["panels"] for t in p["targets"]}
    assert set(queries) == set(EXPECTED)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
    assert [v["datasource"]["uid"] for v in dashboard["templating"]["list"]] == ["prometheus"]


def test_panel_queries_give_the_expected_figures_under_promtool(tmp_path: Path) -> None:
    """Each query, run by promtool on two replicas' series, shows each figure once; the shortfall follows the rule."""
    promtool = require_program("promtool")
    series = [
        {"series": name.replace("}", f',instance="{instance}"}}'), "values": f"{value}+0x10"}
        for name, value in SERIES.items()
        for instance in ("replica-a:8080", "replica-b:8080")
    ]
    queries = {(p["title"], t["refId"]): t["expr"] for p in load()["panels"] for t in p["targets"]}
    tests = [
        {
            "expr": queries[key].replace("$service", ".*"),
            "eval_time": "5m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in expected.items()],
        }
        for key, expected in EXPECTED.items()
    ]
    (tmp_path / "rules.yml").write_text(json.dumps({"groups": []}), encoding="utf-8")
    spec = {
        "rule_files": ["rules.yml"],
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yml").write_text(json.dumps(spec), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
