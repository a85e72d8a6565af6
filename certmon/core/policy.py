"""SLA policy: severities with their clock targets, calendars, compliance target and colour thresholds.

The built-in defaults are written out in `default_policy.toml` next to this module; users copy and edit it.
"""

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from certmon.core.calendars import Always, BusinessHours, Calendar

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")

Milestone = Literal["detected", "analysed", "notified", "acknowledged", "contained", "resolved"]
MILESTONE_NAMES: tuple[Milestone, ...] = Milestone.__args__  # type: ignore[attr-defined]
MAX_OBJECTIVES = 12  # objective names are a metric label: their number must stay small
KPI_DEFAULT = "notify"

# Severity, calendar and objective names end up in metric labels, URLs and file names.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class PolicyError(ValueError):
    """A policy file that cannot be read or does not validate; the message names the file and the key."""


def _check_stop(value: str | None) -> str | None:
    """A stop is one milestone, or two joined by '+' for the later of both (as "notified+contained")."""
    if value is None:
        return None
    parts = value.split("+")
    if len(parts) > 2 or any(part not in MILESTONE_NAMES for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(
            f"{value!r} is not a stop: give a milestone ({', '.join(MILESTONE_NAMES)}) or two joined by '+' "
            "for the later of both, such as 'notified+contained'"
        )
    return value


Stop = Annotated[str, AfterValidator(_check_stop)]


class SeverityPolicy(BaseModel):
    """A severity's clock settings in a policy file of the one-clock format, or an objective's per-severity override.

    Fields left out take the objective's value (or, in the one-clock format, the defaults shown).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_seconds: Annotated[int, Field(gt=0, strict=True)] = 3600
    start: Milestone = "detected"
    stop: Stop = "notified"
    calendar: str = "24x7"


@dataclass(frozen=True, slots=True)
class Rule:
    """One objective's clock for one severity: from which milestone to which, how long, on which calendar."""

    target_seconds: int
    start: Milestone
    stop: str
    calendar: str
    pauses: bool

    @property
    def stop_milestones(self) -> tuple[str, ...]:
        return tuple(self.stop.split("+"))


class ObjectivePolicy(BaseModel):
    """A named SLA objective: a clock from a start milestone to a stop, with a target per severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label_th: Annotated[str, Field(min_length=1)]
    label_en: Annotated[str, Field(min_length=1)]
    kpi: bool = False
    start: Milestone = "detected"
    stop: Stop = "notified"
    calendar: str = "24x7"
    target_seconds: Annotated[int, Field(gt=0, strict=True)] = 3600
    pauses: bool = False
    severities: dict[str, SeverityPolicy] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _start_before_stop(self) -> Self:
        where = {"": self.rule(None), **{f"severities.{k}.": self.rule(k) for k in self.severities}}
        for prefix, rule in where.items():
            if rule.start in rule.stop_milestones:
                raise ValueError(f"{prefix}stop: {rule.stop!r} must differ from the start {rule.start!r}")
        return self

    def rule(self, severity: str | None) -> Rule:
        """This objective's clock for a severity: the objective's settings, with the severity's overrides."""
        override = None if severity is None else self.severities.get(severity)
        given = override.model_fields_set if override is not None else set()

        def pick(key: str) -> Any:
            return getattr(override, key) if key in given else getattr(self, key)

        return Rule(pick("target_seconds"), pick("start"), pick("stop"), pick("calendar"), self.pauses)


def _one_clock_severity(name: str, rule: Any) -> SeverityPolicy:
    """A [severities.NAME] table of the one-clock format; its errors keep naming it as the file does."""
    if isinstance(rule, SeverityPolicy):
        return SeverityPolicy.model_validate(rule.model_dump())  # every value given, as the format means
    try:
        given = SeverityPolicy.model_validate(rule)
    except ValidationError as exc:
        raise ValueError(f"severities.{name}.{_format_errors(exc)}") from None
    return SeverityPolicy.model_validate(given.model_dump())


def _default_objectives(severities: Iterable[str] | None = None) -> dict[str, ObjectivePolicy]:
    """The built-in objectives; with ``severities``, their per-severity targets are kept for those only."""
    objectives = {
        "notify": ObjectivePolicy(
            label_th="แจ้งเตือนหน่วยงานภายใน 1 ชั่วโมง",
            label_en="Agency notified within one hour",
            kpi=True,
        ),
        "acknowledge": ObjectivePolicy(
            label_th="หน่วยงานตอบรับภายใน 60 นาที",
            label_en="Agency acknowledged within 60 minutes",
            start="notified",
            stop="acknowledged",
        ),
        "contain": ObjectivePolicy(
            label_th="ระงับเหตุได้ภายในเวลาที่กำหนด",
            label_en="Contained in time",
            start="notified",
            stop="contained",
            pauses=True,
            target_seconds=86_400,
            severities={
                "critical": SeverityPolicy(target_seconds=14_400),
                "high": SeverityPolicy(target_seconds=28_800),
                "low": SeverityPolicy(target_seconds=259_200),
            },
        ),
        "coordinate": ObjectivePolicy(
            label_th="ประสานงานภายใน 6 ชั่วโมงทำการ",
            label_en="Coordinated within 6 business hours",
            calendar="business",
            target_seconds=21_600,
            pauses=True,
        ),
    }
    if severities is None:
        return objectives
    known = set(severities)
    return {
        name: o.model_copy(update={"severities": {k: v for k, v in o.severities.items() if k in known}})
        for name, o in objectives.items()
    }


class CalendarPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["24x7", "business"] = "24x7"
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    opens: time = time(8, 30)
    closes: time = time(17, 30)
    holidays: str | None = "TH"

    @field_validator("weekdays")
    @classmethod
    def _weekdays_valid(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one weekday is needed (Monday = 0 ... Sunday = 6)")
        if any(not 0 <= day <= 6 for day in value):
            raise ValueError(f"weekdays are 0-6 with Monday = 0, got {list(value)}")
        return tuple(sorted(set(value)))

    @field_validator("opens", "closes")
    @classmethod
    def _local_time(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("give a local time such as 08:30; the policy's timezone applies")
        return value

    @field_validator("holidays")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        # TOML has no null, so an empty string is how a file says "no holidays".
        if value is None or value == "":
            return None
        if value not in holidays_lib.list_supported_countries():
            raise ValueError(f"unknown holiday country {value!r}; use an ISO 3166 code such as 'TH', or '' for none")
        return value

    @model_validator(mode="after")
    def _opens_before_closes(self) -> Self:
        if self.kind == "business" and self.opens >= self.closes:
            raise ValueError(f"opens ({self.opens}) must be before closes ({self.closes})")
        return self


def _default_calendars() -> dict[str, CalendarPolicy]:
    return {"24x7": CalendarPolicy(kind="24x7"), "business": CalendarPolicy(kind="business")}


def _check_names(kind: str, names: dict[str, Any]) -> None:
    for name in names:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"{kind}.{name}: names are 1-64 letters, digits, '.', '_' or '-'")


SCALE_POINTS = 5  # Thai government satisfaction surveys use a 5-point scale; the bands in surveys.py assume it


class SurveyQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    th: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]


class SurveyService(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name_th: str = ""
    name_en: str = ""
    target: Annotated[float, Field(gt=0, le=1)] = 0.85
    questions: tuple[SurveyQuestion, ...]

    @model_validator(mode="after")
    def _questions_valid(self) -> Self:
        if not self.questions:
            raise ValueError("questions: at least one question is needed")
        ids = [question.id for question in self.questions]
        _check_names("questions", dict.fromkeys(ids))
        if len(set(ids)) != len(ids):
            raise ValueError(f"questions: ids must be unique, got {ids}")
        return self

    def question_ids(self) -> tuple[str, ...]:
        return tuple(question.id for question in self.questions)


def _q(id_: str, th: str, en: str) -> SurveyQuestion:
    return SurveyQuestion(id=id_, th=th, en=en)


def _default_survey_services() -> dict[str, SurveyService]:
    return {
        "security-services": SurveyService(
            name_th="การให้บริการด้านความมั่นคงปลอดภัยไซเบอร์",
            name_en="Cybersecurity services",
            questions=(
                _q("timeliness", "ความรวดเร็วในการแจ้งเตือนและประสานงาน", "Speed of alerts and coordination"),
                _q("usefulness", "ความถูกต้องและประโยชน์ของข้อมูลที่ได้รับ", "Accuracy and usefulness of the information"),
                _q("expertise", "ความรู้ความสามารถของเจ้าหน้าที่", "Knowledge and competence of the staff"),
                _q("courtesy", "ความสุภาพและความเต็มใจให้บริการของเจ้าหน้าที่", "Courtesy and helpfulness of the staff"),
                _q("overall", "ความพึงพอใจโดยรวมต่อการให้บริการ", "Overall satisfaction with the service"),
            ),
        ),
        "cii-services": SurveyService(
            name_th="การให้บริการแก่หน่วยงานโครงสร้างพื้นฐานสำคัญทางสารสนเทศ",
            name_en="Critical information infrastructure (CII) services",
            questions=(
                _q("guidance", "ความเหมาะสมของมาตรฐานและแนวปฏิบัติที่ได้รับ", "Fitness of the standards and guidelines"),
                _q("response", "ความรวดเร็วในการรับมือภัยคุกคามทางไซเบอร์", "Speed of response to cyber threats"),
                _q("exercises", "ประโยชน์ของการฝึกซ้อมและการประเมินความพร้อม", "Usefulness of exercises and assessments"),
                _q("expertise", "ความรู้ความสามารถของเจ้าหน้าที่", "Knowledge and competence of the staff"),
                _q("overall", "ความพึงพอใจโดยรวมต่อการให้บริการ", "Overall satisfaction with the service"),
            ),
        ),
    }


class SurveyPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale_th: tuple[str, ...] = ("น้อยที่สุด", "น้อย", "ปานกลาง", "มาก", "มากที่สุด")
    scale_en: tuple[str, ...] = ("very dissatisfied", "dissatisfied", "neutral", "satisfied", "very satisfied")
    services: dict[str, SurveyService] = Field(default_factory=_default_survey_services)

    @field_validator("scale_th", "scale_en")
    @classmethod
    def _five_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(value) != SCALE_POINTS:
            raise ValueError(f"give {SCALE_POINTS} labels, score 1 first; got {len(value)}")
        return value

    @model_validator(mode="after")
    def _services_valid(self) -> Self:
        if not self.services:
            raise ValueError("services: at least one survey service is needed")
        _check_names("services", self.services)
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Asia/Bangkok"
    compliance_target: Annotated[float, Field(gt=0, le=1)] = 0.96
    at_risk_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.75
    green_max_shortfall: Annotated[float, Field(ge=0, le=1)] = 0.05
    yellow_max_shortfall: Annotated[float, Field(ge=0, le=1)] = 0.20
    acknowledgement_link_hours: Annotated[int, Field(gt=0, le=24 * 366, strict=True)] = 24 * 7
    severities: tuple[str, ...] = ("critical", "high", "medium", "low")
    objectives: dict[str, ObjectivePolicy] = Field(default_factory=_default_objectives)
    calendars: dict[str, CalendarPolicy] = Field(default_factory=_default_calendars)
    surveys: SurveyPolicy = Field(default_factory=SurveyPolicy)

    @model_validator(mode="before")
    @classmethod
    def _one_clock_format(cls, data: Any) -> Any:
        """Policies of the one-clock format (clock settings per severity, no objectives) load as `notify`.

        In the objectives format severities are only named; their clocks belong to the objectives.
        """
        if not isinstance(data, dict):
            return data
        severities = data.get("severities")
        if isinstance(severities, list | tuple):
            if "objectives" not in data:
                data = {**data, "objectives": _default_objectives(severities)}
            return data
        if not isinstance(severities, dict):
            return data
        if "objectives" in data:
            for name, rule in severities.items():
                given = sorted(rule) if isinstance(rule, dict) else sorted(getattr(rule, "model_fields_set", ()))
                if given:
                    raise ValueError(
                        f"severities.{name}.{given[0]}: with [objectives], clocks belong to the objectives; list the "
                        f"severities (severities = [...]) and set target_seconds, start, stop and calendar in "
                        f"[objectives.NAME] or [objectives.NAME.severities.{name}]"
                    )
            return {**data, "severities": tuple(severities)}
        notify = {
            "label_th": "แจ้งเตือนหน่วยงานภายในเวลาที่กำหนด",
            "label_en": "Agency notified in time",
            "kpi": True,
            "severities": {name: _one_clock_severity(name, rule) for name, rule in severities.items()},
        }
        return {**data, "severities": tuple(severities), "objectives": {KPI_DEFAULT: notify}}

    @field_validator("timezone")
    @classmethod
    def _real_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}; use an IANA name such as 'Asia/Bangkok'") from None
        return value

    @field_validator("calendars", mode="before")
    @classmethod
    def _keep_builtin_calendars(cls, value: Any) -> Any:
        # Given calendars are added to (or replace by name) the built-in ones, so "24x7" and "business" stay usable.
        if isinstance(value, dict):
            return {**_default_calendars(), **value}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.severities:
            raise ValueError("severities: at least one severity is needed")
        if len(set(self.severities)) != len(self.severities):
            raise ValueError(f"severities: names must be unique, got {list(self.severities)}")
        _check_names("severities", dict.fromkeys(self.severities))
        _check_names("calendars", self.calendars)
        _check_names("objectives", self.objectives)
        if not 1 <= len(self.objectives) <= MAX_OBJECTIVES:
            raise ValueError(f"objectives: give 1 to {MAX_OBJECTIVES} objectives")
        kpis = [name for name, objective in self.objectives.items() if objective.kpi]
        if len(kpis) != 1:
            found = ", ".join(kpis) or "none"
            raise ValueError(f"objectives: exactly one objective needs kpi = true (found: {found})")
        known = ", ".join(sorted(self.calendars))
        for name, objective in self.objectives.items():
            for severity in objective.severities:
                if severity not in self.severities:
                    known_severities = ", ".join(self.severities)
                    raise ValueError(
                        f"objectives.{name}.severities.{severity}: unknown severity (known: {known_severities})"
                    )
            for where, rule in [
                ("", objective.rule(None)),
                *((f"severities.{k}.", objective.rule(k)) for k in objective.severities),
            ]:
                if rule.calendar not in self.calendars:
                    raise ValueError(
                        f"objectives.{name}.{where}calendar: unknown calendar {rule.calendar!r} (known: {known})"
                    )
        if self.yellow_max_shortfall < self.green_max_shortfall:
            raise ValueError(
                f"yellow_max_shortfall: {self.yellow_max_shortfall} is below green_max_shortfall "
                f"{self.green_max_shortfall}"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def kpi_name(self) -> str:
        """The objective the compliance target, the status colour and the fiscal-year report speak of."""
        return next(name for name, objective in self.objectives.items() if objective.kpi)

    @property
    def kpi(self) -> ObjectivePolicy:
        return self.objectives[self.kpi_name]

    def fingerprint(self) -> str:
        """SHA-256 hex of a canonical JSON dump: equal policies give equal fingerprints, whatever the key order."""
        return _digest(_canonical(self.model_dump(mode="json")))

    def clock_fingerprint(self) -> str:
        """The fingerprint of only what decides incidents' clocks, so a survey edit does not recompute them."""
        return _digest(_canonical(self.model_dump(mode="json", include=CLOCK_FIELDS)))

    def objective(self, name: str | None = None) -> ObjectivePolicy:
        """An objective by name (the KPI's when None); KeyError naming the known ones if there is none."""
        try:
            return self.objectives[self.kpi_name if name is None else name]
        except KeyError:
            raise KeyError(f"unknown objective {name!r} (known: {', '.join(self.objectives)})") from None

    def rule(self, severity: str, objective: str | None = None) -> Rule:
        """An objective's clock for a severity (the KPI's when objective is None)."""
        if severity not in self.severities:
            raise KeyError(f"unknown severity {severity!r} (known: {', '.join(self.severities)})")
        return self.objective(objective).rule(severity)

    def calendar_for(self, severity: str, objective: str | None = None) -> Calendar:
        """The calendar of an objective's clock (the KPI's by default) for a severity, shared by equal policies."""
        return self.calendar_named(self.rule(severity, objective).calendar)

    def calendar_named(self, name: str) -> Calendar:
        return _calendar(self.calendars[name], self.timezone)


# The built-in objectives' clock settings do not depend on labels; labels are left out so a translation fix does
# not recompute every stored clock.
CLOCK_FIELDS: dict[str, Any] = {
    "timezone": True,
    "at_risk_fraction": True,
    "severities": True,
    "calendars": True,
    "objectives": {"__all__": {"kpi", "start", "stop", "calendar", "target_seconds", "pauses", "severities"}},
}


def _canonical(dumped: dict[str, Any]) -> dict[str, Any]:
    # The order severities are listed in is how they are shown, not what they mean.
    return {**dumped, "severities": sorted(dumped["severities"])}


def _digest(data: Any) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@lru_cache(maxsize=64)
def build_calendar(policy: CalendarPolicy, tz: tzinfo) -> Calendar:
    """The Calendar a CalendarPolicy describes, in tz."""
    if policy.kind == "24x7":
        return Always()
    return BusinessHours(tz, policy.weekdays, policy.opens, policy.closes, policy.holidays)


def _calendar(policy: CalendarPolicy, timezone: str) -> Calendar:
    # Cached so that a business calendar's per-year holiday tables are computed once per process.
    return build_calendar(policy, ZoneInfo(timezone))


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(item) for item in error["loc"])
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)


def load_policy(path: Path | None) -> Policy:
    """The policy in a TOML file, or the built-in defaults when path is None; PolicyError on any problem."""
    if path is None:
        return Policy()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: invalid TOML: {exc}") from exc
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{path}: {_format_errors(exc)}") from exc
