"""Request and response models; they validate input and generate the OpenAPI document."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    WithJsonSchema,
    model_validator,
)

from certmon.core.periods import EARLIEST  # older than any sensor's record, far from datetime's own limits
from certmon.core.taxonomy import SECTORS, TLP_LABELS, rsit_categories

MAX_CLOCK_SKEW = timedelta(minutes=5)  # sensors' clocks drift; anything further ahead is a mistake
MILESTONES = ("analysed", "notified", "acknowledged", "contained", "resolved")
MILESTONE_FIELDS = tuple(f"{name}_at" for name in MILESTONES)
Milestone = Literal["analysed", "notified", "acknowledged", "contained", "resolved"]
CorrectableMilestone = Literal[
    "detected", "analysed", "notified", "acknowledged", "contained", "resolved", "paused", "resumed"
]
EventType = Literal[
    "analysed",
    "notified",
    "acknowledged",
    "contained",
    "resolved",
    "reopened",
    "excluded",
    "included",
    "paused",
    "resumed",
    "comment",
    "correction",
]
# What an agency's own token may record on its own agency's incidents: its side of the exchange.
AGENCY_EVENTS = frozenset({"acknowledged", "contained", "resolved", "comment"})
# Written by certmon itself when it notifies an agency; never accepted from a client.
NOTIFICATION_EVENTS = ("notification_sent", "notification_failed")
Role = Literal["admin", "analyst", "auditor", "agency"]
Sector = Literal[
    "national-security",
    "public-services",
    "banking-finance",
    "it-telecom",
    "transport-logistics",
    "energy-utilities",
    "public-health",
    "other-cii",
    "government",
]
assert set(SECTORS) == set(Sector.__args__)  # type: ignore[attr-defined]
Tlp = Literal["TLP:RED", "TLP:AMBER+STRICT", "TLP:AMBER", "TLP:GREEN", "TLP:CLEAR"]
assert set(TLP_LABELS) == set(Tlp.__args__)  # type: ignore[attr-defined]


def to_utc(value: datetime) -> datetime:
    """One instant, one representation: 09:00+07:00 and 02:00Z must compare and hash alike.

    A ValueError for a time before 1970, or one that UTC cannot even represent (0001-01-01T00:00+01:00 is in
    year 0), so that such input is refused by name instead of failing later with an OverflowError.
    """
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None
    if utc < EARLIEST:
        raise ValueError("is before 1970")
    return utc


def _not_in_future(value: datetime) -> datetime:
    utc = to_utc(value)
    if utc > datetime.now(UTC) + MAX_CLOCK_SKEW:
        raise ValueError("is more than 5 minutes in the future")
    return utc


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR notation ({exc})") from None


def _rfc3339_text(value: Any) -> Any:
    """Only a date-time string reaches pydantic's parser, which would read 1234567890 or "1234567890" as Unix
    seconds; its own check then refuses one without an offset. A datetime given in Python passes as it is.

    A character test, not a regular expression: bulk ingest runs this for every time of 10,000 lines."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or value[10:11] not in ("T", "t", " ") or not value[:4].isdigit():
        raise ValueError("must be an RFC 3339 date and time with an offset, e.g. 2021-08-01T09:00:00+07:00")
    return value


# What the OpenAPI document promises of the values a client sends. Patterns cannot follow every rule a check
# applies (a day past the month's end, a period's end before its start, a time in the future): those are 422s.
YEAR_1970 = r"(?:19[7-9][0-9]|[2-9][0-9]{3})"  # times and periods before 1970 hold no incident
MONTH_1970 = rf"{YEAR_1970}-(?:0[1-9]|1[0-2])"
_DAY_1970 = rf"{MONTH_1970}-(?:0[1-9]|[12][0-9]|3[01])"
_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
RFC3339_1970 = rf"^{_DAY_1970}T{_CLOCK}:[0-5][0-9](?:\.[0-9]{{1,6}})?(?:Z|[+-]{_CLOCK})$"
TIME_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "date-time",
    "pattern": RFC3339_1970,
    "description": "RFC 3339 with an offset, 1970 or later",
    "examples": ["2021-08-02T09:00:00+07:00"],
}
# A reporting period: a month, a Thai fiscal year (Buddhist Era) or one of its quarters, or a range of dates with its
# end exclusive; none may end before 1970 (FY2513 runs from October 1969, but its first quarter ends in 1969).
_MONTH_9998 = r"(?:19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-(?:0[1-9]|1[0-2])"
_FISCAL = r"FY(?:2513(?:-Q[2-4])?|(?:251[4-9]|25[2-9][0-9]|26[0-9]{2}|2700)(?:-Q[1-4])?)"
_DATE_9998 = rf"{_MONTH_9998}-(?:0[1-9]|[12][0-9]|3[01])"
PERIOD_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": rf"^(?:{_MONTH_9998}|{_FISCAL}|{_DATE_9998}\.\.{_DATE_9998})$",
    "examples": ["2021-08", "FY2564", "FY2564-Q4", "2021-08-01..2021-08-16"],
}
MONTH_SCHEMA: dict[str, Any] = {"type": "string", "pattern": rf"^{_MONTH_9998}$", "examples": ["2021-08"]}
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
CIDR_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": rf"^(?:{_OCTET}(?:\.{_OCTET}){{3}}(?:/(?:3[0-2]|[12]?[0-9]))?"
    r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$",
    "description": "a network in CIDR notation, with no host bits set (10.10.0.0/16, 2001:db8::/32)",
    "examples": ["10.10.0.0/16"],
}

POLICY_LISTS = ("severities", "objectives", "survey_services")
POLICY_KEY = "x-certmon-policy"


def from_policy(name: str) -> dict[str, Any]:
    """The schema of a value that must be one of the policy's names (its severities, objectives, survey services):
    the document lists the names of the policy the service runs with."""
    assert name in POLICY_LISTS, name
    return {"type": "string", POLICY_KEY: name}


# Every time a client sends: an RFC 3339 string with an offset, never a number of seconds.
Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), WithJsonSchema(TIME_SCHEMA)]
PastTime = Annotated[Time, AfterValidator(_not_in_future)]
# A Literal is checked inside pydantic's core: bulk ingest validates it 10,000 times per request.
if TYPE_CHECKING:
    Category = str
else:
    Category = Literal[tuple(sorted(rsit_categories()))]
Cidr = Annotated[str, AfterValidator(_cidr), WithJsonSchema(CIDR_SCHEMA)]
AGENCY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
AgencyCode = Annotated[str, Field(pattern=AGENCY_CODE.pattern, examples=["MOF"])]
# PostgreSQL text cannot hold U+0000; a free-text field carrying one is refused here, by name, not by the database.
# IncidentIn, validated for every line of a bulk body, checks its text in its model validator instead: cheaper still.
NO_NUL = r"^[^\x00]*$"
NUL_MESSAGE = "must not contain NUL characters (\\u0000)"
Text = Annotated[str, Field(min_length=1, max_length=500, pattern=NO_NUL)]


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as an API user should read it."""
    if error["type"] == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == NO_NUL:
        return NUL_MESSAGE
    message: str = error["msg"]
    return message.removeprefix("Value error, ")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


MAX_CONTACTS = 20  # addressees of one notification e-mail; a team's shared mailbox counts as one
WEBHOOK_SECRET_MIN = 16  # characters; the secret keys HMAC-SHA256, a short one can be guessed from a signed body


def _web_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port that is not a number, or out of range, raises ValueError here
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("must not contain spaces or control characters")
    return value


_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[^\x00-\x20\x7f/?#@]*@)?(?:[^\x00-\x20\x7f/?#@:\[\]]+|\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\])"
    r"(?::[0-9]{0,5})?(?:[/?#][^\x00-\x20\x7f]*)?$"
)
WebUrl = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2000,
        examples=["https://soc.mof.go.th/certmon"],
        json_schema_extra={"pattern": _URL_PATTERN},
    ),
    AfterValidator(_web_url),
]


def _one_line(value: str) -> str:
    # A contact's name goes into the To: header, where a line break would start a header of the sender's choosing.
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain line breaks or control characters")
    return value


class Contact(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
    email: EmailStr


class WebhookIn(Strict):
    url: WebUrl
    secret: Annotated[str, Field(min_length=WEBHOOK_SECRET_MIN, max_length=500, pattern=NO_NUL)] | None = Field(
        default=None,
        description="signs every request (HMAC-SHA256); left out when changing the URL, the stored secret is kept",
    )


class WebhookOut(BaseModel):
    url: str
    secret_set: bool = Field(description="the secret itself is never shown")


class AgencyFields(Strict):
    code: AgencyCode
    name: Text
    name_th: Annotated[str, Field(max_length=500, pattern=NO_NUL)] = ""
    sector: Sector = "government"
    cii: bool = False
    networks: list[Cidr] = Field(default_factory=list, max_length=1000)
    contacts: list[Contact] = Field(
        default_factory=list, max_length=MAX_CONTACTS, description="whom certmon e-mails its notifications"
    )


class AgencyIn(AgencyFields):
    webhook: WebhookIn | None = Field(default=None, description="where certmon POSTs its notifications")


class AgencyPatch(Strict):
    name: Text | None = None
    name_th: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = None
    sector: Sector | None = None
    cii: bool | None = None
    networks: list[Cidr] | None = Field(default=None, max_length=1000)
    contacts: list[Contact] | None = Field(default=None, max_length=MAX_CONTACTS)
    webhook: WebhookIn | None = Field(default=None, description="null removes the webhook; left out, it is kept")


class Agency(AgencyFields):
    webhook: WebhookOut | None
    created_at: datetime
    updated_at: datetime


Channel = Literal["email", "webhook"]
CHANNELS: tuple[Channel, ...] = Channel.__args__  # type: ignore[attr-defined]


class NotificationIn(Strict):
    channel: Channel
    resend: bool = Field(default=False, description="send again although a notification on this channel was sent")


class NotificationOut(BaseModel):
    id: int
    incident: int
    channel: Channel
    status: Literal["sending", "sent", "failed"]
    recipients: list[str] = Field(description="the e-mail addresses, or the webhook's URL")
    message_id: str | None = Field(description="the e-mail's Message-ID, or the webhook's X-Certmon-Delivery")
    response: str | None = Field(description="what the mail server or the webhook answered")
    actor: str
    started_at: datetime
    finished_at: datetime | None
    ack_expires_at: datetime | None = Field(description="when the acknowledgement link it carried expires")


class IncidentIn(Strict):
    agency: AgencyCode
    title: Annotated[str, Field(min_length=1, max_length=500)]
    severity: str = Field(
        description="one of the policy's severities, by default critical, high, medium, low",
        json_schema_extra=from_policy("severities"),
    )
    category: Category = Field(description="RSIT class/type", examples=["malicious-code/c2-server"])
    detected_at: Time = Field(description="RFC 3339 with an offset, at most 5 minutes in the future")
    source: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.:-]*$")] = "api"
    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    tlp: Tlp | None = None
    description: Annotated[str, Field(max_length=20000)] | None = None
    analysed_at: Time | None = None
    notified_at: Time | None = None
    acknowledged_at: Time | None = None
    contained_at: Time | None = None
    resolved_at: Time | None = None

    @model_validator(mode="after")
    def _checks(self) -> IncidentIn:
        """No NUL in the free text; every time in UTC, none in the future, no milestone before detection.

        This runs for every line of a bulk body, so it is written for speed: a NUL test here costs a fraction of
        the NO_NUL pattern the other models use; times are converted first, since two datetimes with the very
        same tzinfo compare without asking either for its offset, and that asking is what the checks cost most.
        """
        fields = self.__dict__
        for name in ("title", "external_id", "description"):
            text = fields[name]
            if text is not None and "\x00" in text:
                raise ValueError(f"{name}: {NUL_MESSAGE}")
        latest = datetime.now(UTC) + MAX_CLOCK_SKEW
        detected = _field_utc(fields, "detected_at")
        if detected > latest:
            raise ValueError("detected_at: is more than 5 minutes in the future")
        fields["detected_at"] = detected
        for name in MILESTONE_FIELDS:
            at: datetime | None = fields[name]
            if at is None:
                continue
            at = _field_utc(fields, name)
            if at > latest:
                raise ValueError(f"{name}: is more than 5 minutes in the future")
            if at < detected:
                raise ValueError(f"{name}: is earlier than detected_at")
            fields[name] = at
        return self


def _field_utc(fields: dict[str, Any], name: str) -> datetime:
    try:
        return to_utc(fields[name])
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


# What EventIn._shape checks, as the document states it.
_EVENT_RULES: Any = [
    {
        "if": {"properties": {"type": {"enum": ["correction", "excluded", "paused"]}}},
        "then": {"required": ["reason"], "properties": {"reason": {"type": "string"}}},
    },
    {
        "if": {"properties": {"type": {"const": "correction"}}},
        "then": {
            "required": ["milestone", "at"],
            "properties": {"milestone": {"type": "string"}, "at": {"type": "string"}},
        },
        "else": {"properties": {"milestone": {"type": "null"}}},
    },
    {
        "if": {"required": ["pause"], "properties": {"pause": {"type": "integer"}}},
        "then": {"required": ["milestone"], "properties": {"milestone": {"enum": ["paused", "resumed"]}}},
    },
]


class EventIn(Strict):
    model_config = ConfigDict(json_schema_extra={"allOf": _EVENT_RULES})

    type: EventType
    at: PastTime | None = Field(default=None, description="when it happened; the server's time when omitted")
    note: Annotated[str, Field(max_length=20000, pattern=NO_NUL)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)] | None = None
    milestone: CorrectableMilestone | None = Field(
        default=None, description="with type correction: which milestone, or paused / resumed for a pause's times"
    )
    pause: Annotated[int, Field(gt=0, lt=2**63)] | None = Field(
        default=None, description="with a correction of paused or resumed: the pause's id (default: the latest)"
    )

    @model_validator(mode="after")
    def _shape(self) -> EventIn:
        if self.pause is not None and self.milestone not in ("paused", "resumed"):
            raise ValueError("pause: is only allowed with a correction of paused or resumed")
        if self.type in ("correction", "excluded", "paused") and not self.reason:
            raise ValueError(f"reason: is required for a {self.type} event")
        if self.type == "correction" and self.milestone is None:
            raise ValueError("milestone: is required for a correction event")
        if self.type == "correction" and self.at is None:
            raise ValueError("at: is required for a correction event")
        if self.type != "correction" and self.milestone is not None:
            raise ValueError("milestone: is only allowed with a correction event")
        return self


State = Literal["pending", "at_risk", "paused", "breached", "met", "excluded", "no_clock"]


class SlaOut(BaseModel):
    clock_start: datetime | None
    due_at: datetime | None
    stopped_at: datetime | None
    elapsed_seconds: float | None
    state: State


class ObjectiveClockOut(BaseModel):
    state: State
    clock_start: datetime | None
    due_at: datetime | None = Field(description="null while the clock is paused: it depends on when it resumes")
    stopped_at: datetime | None
    delay_seconds: float | None = Field(description="calendar seconds from start to stop, pauses left out")
    paused_seconds: float = Field(description="calendar seconds paused so far, the running pause included")
    elapsed_seconds: float | None = Field(description="calendar seconds on the clock now, pauses left out")


class EventOut(BaseModel):
    id: int | None = Field(description="null for the milestones given when the incident was recorded")
    type: str
    milestone: str | None
    at: datetime
    previous_at: datetime | None = Field(description="with a correction or reopening: the value it replaced")
    note: str | None
    reason: str | None
    actor: str
    recorded_at: datetime
    pause: int | None = Field(default=None, description="with paused, resumed and their corrections: the pause")
    detail: dict[str, Any] | None = Field(default=None, description="with notifications: what the server answered")


class IncidentOut(BaseModel):
    id: int
    agency: str
    title: str
    severity: str
    category: str
    tlp: str | None
    description: str | None
    source: str
    external_id: str | None
    detected_at: datetime
    analysed_at: datetime | None
    notified_at: datetime | None
    acknowledged_at: datetime | None
    contained_at: datetime | None
    resolved_at: datetime | None
    excluded: bool
    exclusion_reason: str | None
    created_by: str
    created_at: datetime
    sla: SlaOut = Field(description="the KPI objective's clock")
    objectives: dict[str, ObjectiveClockOut] = Field(description="every objective's clock, by objective name")
    timeline: list[EventOut] | None = None


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None


class AuditEntryOut(BaseModel):
    id: int
    at: datetime = Field(description="when the statement ran")
    actor: str = Field(description="token:<name>, console:<name>, system:<job>, cli:<user>, ack-link, or db:<user>")
    actor_role: str | None
    action: Literal["insert", "update", "delete", "truncate"]
    table: str
    kind: Literal["incident", "agency", "token", "survey", "export", "service"]
    entity_ids: list[str] = Field(description="the ids of the entities written: incident ids, agency codes, ...")
    row_count: int = Field(description="rows the statement wrote; one entry stands for the whole statement")
    before: list[dict[str, Any]] | None = Field(description="the rows before (update, delete); secrets redacted")
    after: list[dict[str, Any]] | None = Field(description="the rows after (insert, update); secrets redacted")
    chain_seq: int | None = Field(description="the entry's position in the hash chain; null until sealed")
    chain_hash: str | None = Field(description="the chain's hash up to and including this entry")


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class BulkResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[dict[str, Any]]


class Latency(BaseModel):
    p50: float | None
    p90: float | None
    p95: float | None
    max: float | None


class FiguresOut(BaseModel):
    total: int
    met: int
    breached: int
    pending: int
    at_risk: int
    excluded: int
    no_clock: int
    paused: int
    compliance: float | None
    shortfall: float | None
    status: Literal["green", "yellow", "red"] | None
    latency_seconds: Latency


class GroupOut(FiguresOut):
    key: str
    name: str | None = Field(default=None, description="with group_by=agency: the agency's name")
    name_th: str | None = Field(default=None, description="with group_by=agency: the agency's Thai name")


class PeriodOut(BaseModel):
    label: str
    start: datetime
    end: datetime


class RecomputingOut(BaseModel):
    remaining: int = Field(ge=1, description="incidents whose clocks are still stored under the previous policy")


RECOMPUTING = (
    "while clocks are being recomputed after a policy change, how many are left: the figures mix both policies "
    "until then; null when every clock is of the policy in force"
)


class SlaReport(FiguresOut):
    objective: str = Field(description="the objective these figures are of; the KPI's unless one was asked for")
    period: PeriodOut
    target: float
    groups: list[GroupOut]
    recomputing: RecomputingOut | None = Field(description=RECOMPUTING)


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class TokenIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")]
    role: Role
    agency: AgencyCode | None = None
