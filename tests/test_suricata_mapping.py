"""The built-in Suricata mapping classifies real alerts by their own fields and ranks known-bad signatures."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from certmon.core.policy import load_policy
from certmon.core.sources import OTHER, eve
from certmon.core.sources.mapping import IngestMapping, MappingError, load_mapping

SAMPLES = sorted((Path(__file__).parent / "data" / "suricata").glob("*.alerts.json"))
SEVERITY_RANK = {"critical": 3, "high": 2, "medium": 1, "low": 0}


def alerts(path: Path) -> list[tuple[dict[str, Any], eve.Alert]]:
    convert = eve.converter(IngestMapping().eve)
    return [(record, convert(record)) for record in json.loads(path.read_text())]


def test_fewer_than_a_fifth_of_every_shipped_suricata_sample_is_undetermined() -> None:
    """Over all shipped samples together, and in each, under 20 % of the alerts land in other/undetermined."""
    assert len(SAMPLES) >= 2
    totals: Counter[str] = Counter()
    for path in SAMPLES:
        categories = Counter(alert.category for _, alert in alerts(path))
        assert categories[OTHER] / categories.total() < 0.20, (path.name, categories[OTHER], categories.total())
        totals.update(categories)
    assert totals[OTHER] / totals.total() < 0.20
    assert len(totals) >= 8  # not everything poured into one type either


def test_heartbleed_alerts_are_high_or_critical_whatever_alert_severity_says() -> None:
    """The 2018 sample's Heartbleed alerts carry severity 2 or 3; none of them is ranked below high."""
    found = [(r, a) for r, a in alerts(SAMPLES[-1]) if "heartbleed" in a.title.lower()]
    assert len(found) >= 3
    assert {r["alert"]["severity"] for r, _ in found} & {2, 3}
    assert all(SEVERITY_RANK[a.severity] >= SEVERITY_RANK["high"] for _, a in found)


def test_known_command_and_control_signatures_are_c2_and_above_low() -> None:
    """ET CNC and a trojan's CnC or C2 check-in are C2 servers, ranked above low."""
    found = [
        a
        for path in SAMPLES
        for _, a in alerts(path)
        if a.title.startswith(("ET CNC", "ET TROJAN Possible NanoCore C2"))
    ]
    assert {a.title.split()[1] for a in found} == {"CNC", "TROJAN"}
    assert all(a.category == "malicious-code/c2-server" and SEVERITY_RANK[a.severity] > 0 for a in found)


def test_exploit_kit_landing_pages_are_malware_distribution_above_low() -> None:
    found = [a for path in SAMPLES for _, a in alerts(path) if " EK " in a.title]
    assert found
    assert all(a.category == "malicious-code/malware-distribution" and a.severity == "high" for a in found)


def record(signature: str, category: str | None, severity: int = 3) -> dict[str, Any]:
    rule: dict[str, Any] = {"signature": signature, "signature_id": 9, "severity": severity}
    if category is not None:
        rule["category"] = category
    return {"timestamp": "2024-05-01T10:00:00+07:00", "dest_ip": "10.0.0.1", "alert": rule}


@pytest.mark.parametrize(
    ("signature", "category", "expected"),
    [
        ("ET SCAN Behavioral Unusual Port 445 traffic", "Misc activity", "information-gathering/scanner"),
        ("ET SCANNER-ish but not the family", "Misc activity", OTHER),
        ("ET TROJAN Some Checkin", None, "malicious-code/infected-system"),
        ("GPL ATTACK_RESPONSE id check returned root", "Potentially Bad Traffic", "intrusions/system-compromise"),
        ("LOCAL rule", "Web Application Attack", "intrusion-attempts/exploit"),
        ("LOCAL rule", "Misc activity", OTHER),
    ],
)
def test_signature_rules_then_class_then_rule_family_decide_the_category(
    signature: str, category: str | None, expected: str
) -> None:
    alert = eve.converter(IngestMapping().eve)(record(signature, category))
    assert alert.category == expected


def test_a_mapping_file_can_replace_the_signature_rules_and_its_severities_are_checked(tmp_path: Path) -> None:
    """A rule's severity must be the policy's; a bad pattern or RSIT type is refused naming the key."""
    good = tmp_path / "good.toml"
    good.write_text('[[eve.signatures]]\npattern = "^LOCAL "\ncategory = "fraud/phishing"\nseverity = "critical"\n')
    alert = eve.converter(load_mapping(good).eve)(record("LOCAL phish kit", "Misc activity"))
    assert (alert.category, alert.severity) == ("fraud/phishing", "critical")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[[eve.signatures]]\npattern = "x"\ncategory = "other/undetermined"\nseverity = "urgent"\n')
    with pytest.raises(MappingError, match=r"eve.signatures\[0\]: 'urgent' is no severity"):
        load_mapping(unknown).check(load_policy(None))
    for body, where in (
        ('pattern = "("', "eve.signatures.0.pattern"),
        ('pattern = "x"\ncategory = "web/x"', "category"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(
            f'[[eve.signatures]]\n{body}\ncategory = "fraud/phishing"\n'
            if "category" not in body
            else f"[[eve.signatures]]\n{body}\n"
        )
        load_mapping.cache_clear()
        with pytest.raises(MappingError, match=where):
            load_mapping(bad)


def test_a_class_or_severity_of_the_wrong_json_type_falls_back_to_the_rule_family_and_default_severity() -> None:
    """A hostile record's list severity or object class is no crash: the signature's family decides, severity low."""
    hostile = record("ET SCAN Potential SSH Scan", None)
    hostile["alert"].update(severity=[1], category={"class": "x"})
    alert = eve.converter(IngestMapping().eve)(hostile)
    assert (alert.category, alert.severity) == ("information-gathering/scanner", "low")
