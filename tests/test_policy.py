"""Policy defaults, the TOML policy file, and errors that name the offending key."""

import tomllib
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from certmon.core.calendars import Always, BusinessHours
from certmon.core.policy import (
    DEFAULT_POLICY_PATH,
    CalendarPolicy,
    ObjectivePolicy,
    Policy,
    PolicyError,
    Rule,
    SeverityPolicy,
    load_policy,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_python_defaults_equal_the_shipped_default_policy_file() -> None:
    """certmon/default_policy.toml and Policy() describe the same policy, severities in the same order."""
    from_file = load_policy(DEFAULT_POLICY_PATH)
    assert from_file == Policy() == load_policy(None)
    assert from_file.fingerprint() == Policy().fingerprint()
    assert list(from_file.severities) == list(Policy().severities) == ["critical", "high", "medium", "low"]


def test_default_policy_file_spells_out_every_key() -> None:
    """Every top-level key and every business-calendar key appears in the shipped file, so users see them all."""
    raw = tomllib.loads(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert set(raw) == set(Policy.model_fields)
    assert set(raw["calendars"]["business"]) == set(CalendarPolicy.model_fields)
    assert set(raw["objectives"]["notify"]) == set(ObjectivePolicy.model_fields) - {"severities"}
    assert set(raw["objectives"]["contain"]["severities"]["critical"]) == {"target_seconds"}


def test_defaults_are_one_hour_detection_to_notification_in_bangkok() -> None:
    """The KPI objective, notify, gives each severity a 1-hour, detected-to-notified, 24x7 clock; the target is 96 %."""
    policy = Policy()
    assert policy.tz == ZoneInfo("Asia/Bangkok")
    assert policy.compliance_target == 0.96
    assert policy.kpi_name == "notify"
    for severity in policy.severities:
        assert policy.rule(severity) == Rule(3600, "detected", "notified", "24x7", pauses=False)
    assert policy.calendars["business"] == CalendarPolicy(
        kind="business", weekdays=(0, 1, 2, 3, 4), opens=time(8, 30), closes=time(17, 30), holidays="TH"
    )


def test_toml_severities_replace_the_default_set_and_can_start_at_analysis(tmp_path: Path) -> None:
    """A file listing its own severities, one clocked from analysis as in the FY2564 report, gets exactly those."""
    policy = load_policy(
        write(
            tmp_path,
            """
compliance_target = 0.96

[severities.alert]
target_seconds = 3600
start = "analysed"

[severities.coordination]
target_seconds = 21600
stop = "notified+contained"
calendar = "business"

[calendars.business]
kind = "business"
opens = 09:00:00
closes = "18:00"
holidays = ""
""",
        )
    )
    assert list(policy.severities) == ["alert", "coordination"]
    assert policy.rule("alert").start == "analysed"
    assert policy.rule("alert").stop == "notified"
    assert policy.rule("coordination").stop == "notified+contained"
    business = policy.calendars["business"]
    assert (business.opens, business.closes, business.holidays) == (time(9), time(18), None)
    assert "24x7" in policy.calendars
    assert isinstance(policy.calendar_for("alert"), Always)
    calendar = policy.calendar_for("coordination")
    assert isinstance(calendar, BusinessHours)
    assert calendar is policy.calendar_for("coordination")


def test_equal_policies_have_equal_fingerprints_and_different_ones_differ() -> None:
    """The fingerprint ignores severity key order but changes with any value."""
    a = Policy(severities={"high": SeverityPolicy(), "low": SeverityPolicy(target_seconds=7200)})
    b = Policy(severities={"low": SeverityPolicy(target_seconds=7200), "high": SeverityPolicy()})
    c = Policy(severities={"high": SeverityPolicy(), "low": SeverityPolicy(target_seconds=7201)})
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[severities.high]\ntarget_seconds = 0", "severities.high.target_seconds"),
        ("[severities.high]\ntarget_seconds = 3600.5", "severities.high.target_seconds"),
        ('[severities.high]\nstart = "triaged"', "severities.high.start"),
        ('[severities.high]\nstop = "closed"', "severities.high.stop"),
        ('[severities.high]\nstart = "notified"', "severities.high.stop"),
        ('[severities.high]\ncalendar = "office"', "severities.high.calendar"),
        ("[severities.high]\ntarget_secs = 60", "severities.high.target_secs"),
        ("compliance_target = 1.5", "compliance_target"),
        ("compliance_target = 0", "compliance_target"),
        ("at_risk_fraction = 1.0", "at_risk_fraction"),
        ('timezone = "Asia/Bankok"', "timezone"),
        ("green_max_shortfall = 0.3\nyellow_max_shortfall = 0.2", "yellow_max_shortfall"),
        ("[calendars.business]\nweekdays = [0, 7]", "calendars.business.weekdays"),
        ('[calendars.business]\nkind = "business"\nopens = "18:00"\nclosed = "08:00"', "calendars.business.closed"),
        ('[calendars.business]\nkind = "business"\nopens = "18:00"', "calendars.business"),
        ('[calendars.business]\nholidays = "XX"', "calendars.business.holidays"),
        ("unknown = 1", "unknown"),
    ],
)
def test_bad_policy_value_raises_policy_error_naming_key_and_file(tmp_path: Path, toml: str, key: str) -> None:
    """Each invalid value is reported with its dotted key path and the file it came from."""
    path = write(tmp_path, toml)
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    message = str(excinfo.value)
    assert f"{key}:" in message or f"{key}." in message
    assert str(path) in message


def test_unparsable_toml_raises_policy_error(tmp_path: Path) -> None:
    """A syntax error is a PolicyError naming the file, not a raw TOMLDecodeError."""
    path = write(tmp_path, "compliance_target = \n")
    with pytest.raises(PolicyError, match="invalid TOML"):
        load_policy(path)


def test_missing_policy_file_raises_policy_error(tmp_path: Path) -> None:
    """A path that does not exist is a PolicyError naming it."""
    path = tmp_path / "absent.toml"
    with pytest.raises(PolicyError, match=r"absent\.toml"):
        load_policy(path)


def test_policy_error_is_a_value_error() -> None:
    """Callers that catch ValueError also catch policy problems."""
    assert issubclass(PolicyError, ValueError)


def test_survey_changes_leave_the_clock_fingerprint_alone() -> None:
    """Editing a survey target changes the policy's fingerprint but not the one stored clocks are keyed on."""
    defaults = Policy()
    service = next(iter(defaults.surveys.services))
    services = dict(defaults.surveys.services)
    services[service] = services[service].model_copy(update={"target": 0.9})
    edited = defaults.model_copy(update={"surveys": defaults.surveys.model_copy(update={"services": services})})
    assert edited.fingerprint() != defaults.fingerprint()
    assert edited.clock_fingerprint() == defaults.clock_fingerprint()
    slower = defaults.model_copy(update={"at_risk_fraction": 0.5})
    assert slower.clock_fingerprint() != defaults.clock_fingerprint()


def test_built_in_objectives_are_notify_acknowledge_contain_and_six_business_hours_of_coordination() -> None:
    """Beside the KPI: the agency's acknowledgement within an hour, containment that pauses, and ThaiCERT's
    6-business-hour coordination on the business calendar."""
    policy = Policy()
    assert list(policy.objectives) == ["notify", "acknowledge", "contain", "coordinate"]
    assert policy.rule("high", "acknowledge") == Rule(3600, "notified", "acknowledged", "24x7", pauses=False)
    assert policy.rule("critical", "contain") == Rule(4 * 3600, "notified", "contained", "24x7", pauses=True)
    assert policy.rule("medium", "contain").target_seconds == 24 * 3600
    assert policy.rule("low", "coordinate") == Rule(6 * 3600, "detected", "notified", "business", pauses=True)
    assert isinstance(policy.calendar_for("low", "coordinate"), BusinessHours)
    assert all(o.label_th and o.label_en for o in policy.objectives.values())


def test_a_one_clock_policy_file_loads_as_the_notify_objective(tmp_path: Path) -> None:
    """A file of the format before objectives keeps its clocks, as the one KPI objective."""
    policy = load_policy(
        write(tmp_path, '[severities.p1]\ntarget_seconds = 1800\n\n[severities.p2]\nstart = "analysed"\n')
    )
    assert list(policy.objectives) == ["notify"]
    assert policy.kpi_name == "notify"
    assert policy.rule("p1") == Rule(1800, "detected", "notified", "24x7", pauses=False)
    assert policy.rule("p2") == Rule(3600, "analysed", "notified", "24x7", pauses=False)


def test_an_objectives_file_names_its_severities_and_overrides_per_severity(tmp_path: Path) -> None:
    """Severities are listed; an objective's settings hold for each, unless a severity overrides them."""
    policy = load_policy(
        write(
            tmp_path,
            """
severities = ["p1", "p2"]

[objectives.report]
label_th = "รายงาน"
label_en = "Report"
kpi = true
stop = "notified+contained"
target_seconds = 7200

[objectives.report.severities.p2]
calendar = "business"
target_seconds = 21600
""",
        )
    )
    assert policy.kpi_name == "report"
    assert policy.rule("p1") == Rule(7200, "detected", "notified+contained", "24x7", pauses=False)
    assert policy.rule("p2") == Rule(21600, "detected", "notified+contained", "business", pauses=False)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[severities.high]\ntarget_seconds = 60\n[objectives.notify]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true',
            "severities.high.target_seconds: with [objectives], clocks belong to the objectives",
        ),
        ('[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"', "exactly one objective needs kpi = true (found: none)"),
        (
            '[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true\n[objectives.b]\nlabel_th = "ข"\n'
            'label_en = "b"\nkpi = true',
            "found: a, b",
        ),
        (
            '[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true\n[objectives.a.severities.urgent]\n'
            "target_seconds = 60",
            "objectives.a.severities.urgent: unknown severity",
        ),
        ('[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true\nstart = "notified"', "objectives.a"),
        ('[objectives.a]\nlabel_en = "a"\nkpi = true', "objectives.a.label_th"),
        ('[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true\ncalendar = "office"', "objectives.a.calendar"),
        ('[objectives.a]\nlabel_th = "ก"\nlabel_en = "a"\nkpi = true\nstop = "notified+nothing"', "objectives.a.stop"),
    ],
)
def test_bad_objectives_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    """Each mistake in the objectives format names where it is and, for old keys, the new ones."""
    with pytest.raises(PolicyError) as excinfo:
        load_policy(write(tmp_path, toml))
    assert message in str(excinfo.value)


def test_clock_fingerprint_follows_objectives_but_not_their_labels() -> None:
    """A new target recomputes stored clocks; a reworded label does not."""
    defaults = Policy()
    data = defaults.model_dump()
    relabelled = Policy.model_validate(
        {**data, "objectives": {**data["objectives"], "contain": {**data["objectives"]["contain"], "label_en": "x"}}}
    )
    slower = Policy.model_validate(
        {
            **data,
            "objectives": {**data["objectives"], "contain": {**data["objectives"]["contain"], "target_seconds": 1}},
        }
    )
    assert relabelled.clock_fingerprint() == defaults.clock_fingerprint()
    assert slower.clock_fingerprint() != defaults.clock_fingerprint()
