"""SLA policy: severities with their clock targets, calendars, compliance target and colour thresholds.

The built-in defaults are written out in `default_policy.toml` next to this module; users copy and edit it.
"""

import hashlib
import json
import re
import tomllib
from datetime import time, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from certmon.core.calendars import Always, BusinessHours, Calendar

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.toml")

Milestone = Literal["detected", "analysed", "notified", "acknowledged", "contained", "resolved"]
ClockStart = Literal["detected", "analysed"]
ClockStop = Literal["notified", "contained", "notified+contained"]

# Severity and calendar names end up in metric labels, URLs and file names.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class PolicyError(ValueError):
    """A policy file that cannot be read or does not validate; the message names the file and the key."""


class SeverityPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target_seconds: Annotated[int, Field(gt=0, strict=True)] = 3600
    start: ClockStart = "detected"
    stop: ClockStop = "notified"
    calendar: str = "24x7"


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


def _default_severities() -> dict[str, SeverityPolicy]:
    return {name: SeverityPolicy() for name in ("critical", "high", "medium", "low")}


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
    severities: dict[str, SeverityPolicy] = Field(default_factory=_default_severities)
    calendars: dict[str, CalendarPolicy] = Field(default_factory=_default_calendars)
    surveys: SurveyPolicy = Field(default_factory=SurveyPolicy)

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
        _check_names("severities", self.severities)
        _check_names("calendars", self.calendars)
        for name, severity in self.severities.items():
            if severity.calendar not in self.calendars:
                known = ", ".join(sorted(self.calendars))
                raise ValueError(f"severities.{name}.calendar: unknown calendar {severity.calendar!r} (known: {known})")
        if self.yellow_max_shortfall < self.green_max_shortfall:
            raise ValueError(
                f"yellow_max_shortfall: {self.yellow_max_shortfall} is below green_max_shortfall "
                f"{self.green_max_shortfall}"
            )
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def fingerprint(self) -> str:
        """SHA-256 hex of a canonical JSON dump: equal policies give equal fingerprints, whatever the key order."""
        return _digest(self.model_dump(mode="json"))

    def clock_fingerprint(self) -> str:
        """The fingerprint of only what decides incidents' clocks, so a survey edit does not recompute them."""
        return _digest(self.model_dump(mode="json", include=CLOCK_FIELDS))

    def severity(self, name: str) -> SeverityPolicy:
        """The policy of a severity; KeyError naming the known ones if it is not configured."""
        try:
            return self.severities[name]
        except KeyError:
            raise KeyError(f"unknown severity {name!r} (known: {', '.join(self.severities)})") from None

    def calendar_for(self, severity: str) -> Calendar:
        """The calendar a severity's clock runs on, shared between equal policies."""
        return _calendar(self.calendars[self.severity(severity).calendar], self.timezone)


CLOCK_FIELDS = {"timezone", "at_risk_fraction", "severities", "calendars"}


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
