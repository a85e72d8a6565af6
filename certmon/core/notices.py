"""What certmon tells an agency it notifies: the Thai and English text of the e-mail, and the webhook's JSON.

TLP decides what leaves the CERT. A TLP:RED or TLP:AMBER+STRICT incident's description is never put in a notice:
a mailbox or a webhook receiver reaches more people than the label allows. The title always goes; analysts write
titles knowing that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from certmon.core.taxonomy import rsit_names

WITHHELD_TLP = frozenset({"TLP:RED", "TLP:AMBER+STRICT"})
ASKS = ("acknowledge", "contain", "report")  # what the agency is asked to do, in the webhook's JSON
SEVERITY_TH = {"critical": "วิกฤต", "high": "สูง", "medium": "ปานกลาง", "low": "ต่ำ"}
SUBJECT_TITLE_MAX = 120  # characters of the title in the subject line; the body carries it whole
RULE = "-" * 60
_WITHHELD_TH = "รายละเอียดของเหตุการณ์ไม่ได้แนบมากับข้อความนี้ตามระดับ {tlp} โปรดขอรับจากผู้แจ้งผ่านช่องทางที่ปลอดภัย"
_WITHHELD_EN = "The description is not in this message, as the incident is {tlp}: ask us for it over a secure channel."


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """Everything a notice says, as stored."""

    notification_id: int
    incident_id: int
    title: str
    severity: str
    category: str
    tlp: str | None
    description: str | None
    detected_at: datetime
    agency_code: str
    agency_name: str
    agency_name_th: str
    ack_url: str
    ack_expires_at: datetime


@dataclass(frozen=True, slots=True)
class Notice:
    subject: str
    text: str  # Thai first, then English
    payload: dict[str, Any]  # the webhook's body, before it is encoded and signed


def shareable_description(tlp: str | None, description: str | None) -> str | None:
    """The description as a notice may carry it: none for TLP:RED and TLP:AMBER+STRICT."""
    if tlp in WITHHELD_TLP or not description:
        return None
    return description


def compose(facts: NoticeFacts, tz: tzinfo) -> Notice:
    thai, english = _thai(facts, tz), _english(facts, tz)
    return Notice(_subject(facts), f"{thai}\n\n{RULE}\n\n{english}\n", _payload(facts, thai, english))


def _subject(facts: NoticeFacts) -> str:
    title = " ".join(facts.title.split())
    if len(title) > SUBJECT_TITLE_MAX:
        title = title[: SUBJECT_TITLE_MAX - 1] + "…"
    label = f"[{facts.tlp}] " if facts.tlp else ""
    return f"{label}แจ้งเหตุการณ์ / Incident notification #{facts.incident_id}: {title}"


def _local(at: datetime, tz: tzinfo) -> str:
    return f"{at.astimezone(tz):%Y-%m-%d %H:%M} ({tz})"


def _category(facts: NoticeFacts) -> str:
    name = rsit_names().get(facts.category)
    return facts.category if name is None else f"{name} ({facts.category})"


def _thai(facts: NoticeFacts, tz: tzinfo) -> str:
    severity = SEVERITY_TH.get(facts.severity)
    lines = [
        *([f"{facts.tlp}", ""] if facts.tlp else []),
        f"เรียน {facts.agency_name_th or facts.agency_name} ({facts.agency_code})",
        "",
        "ขอแจ้งเหตุการณ์ด้านความมั่นคงปลอดภัยไซเบอร์ที่เกี่ยวข้องกับหน่วยงานของท่าน ดังนี้",
        "",
        f"เลขที่เหตุการณ์: #{facts.incident_id}",
        f"เรื่อง: {facts.title}",
        f"ระดับความรุนแรง: {facts.severity if severity is None else f'{severity} ({facts.severity})'}",
        f"ประเภทเหตุการณ์ (RSIT): {_category(facts)}",
        f"ตรวจพบเมื่อ: {_local(facts.detected_at, tz)}",
        *([f"ระดับการเปิดเผยข้อมูล: {facts.tlp}"] if facts.tlp else []),
        "",
        *_description(facts, "รายละเอียด:", _WITHHELD_TH.format(tlp=facts.tlp)),
        "",
        "ขอให้หน่วยงานของท่านดำเนินการดังนี้",
        '1. ยืนยันการรับทราบ: เปิดลิงก์ด้านล่าง แล้วกดปุ่ม "รับทราบ / Acknowledge"',
        "2. ควบคุมและจำกัดผลกระทบของเหตุการณ์",
        "3. รายงานผลการดำเนินการกลับมายังผู้แจ้ง",
        "",
        f"ลิงก์ยืนยันการรับทราบ (ใช้ได้ครั้งเดียว หมดอายุ {_local(facts.ack_expires_at, tz)}):",
        facts.ack_url,
    ]
    return "\n".join(lines)


def _english(facts: NoticeFacts, tz: tzinfo) -> str:
    lines = [
        f"Dear {facts.agency_name} ({facts.agency_code}),",
        "",
        "We are notifying you of a cybersecurity incident that concerns your organisation.",
        "",
        f"Incident: #{facts.incident_id}",
        f"Title: {facts.title}",
        f"Severity: {facts.severity}",
        f"Category (RSIT): {_category(facts)}",
        f"Detected: {_local(facts.detected_at, tz)}",
        *([f"Traffic Light Protocol: {facts.tlp}"] if facts.tlp else []),
        "",
        *_description(facts, "Description:", _WITHHELD_EN.format(tlp=facts.tlp)),
        "",
        "We ask you to:",
        '1. Acknowledge: open the link below and press "รับทราบ / Acknowledge"',
        "2. Contain the incident and limit its impact",
        "3. Report back to us what you have done",
        "",
        f"Acknowledgement link (single use, expires {_local(facts.ack_expires_at, tz)}):",
        facts.ack_url,
    ]
    return "\n".join(lines)


def _description(facts: NoticeFacts, heading: str, withheld: str) -> list[str]:
    if facts.tlp in WITHHELD_TLP:
        return [withheld]
    description = shareable_description(facts.tlp, facts.description)
    return [] if description is None else [heading, description]


def _payload(facts: NoticeFacts, thai: str, english: str) -> dict[str, Any]:
    return {
        "type": "certmon.notification",
        "notification": facts.notification_id,
        "incident": {
            "id": facts.incident_id,
            "title": facts.title,
            "severity": facts.severity,
            "category": facts.category,
            "category_name": rsit_names().get(facts.category),
            "tlp": facts.tlp,
            "detected_at": facts.detected_at.isoformat(),
            "description": shareable_description(facts.tlp, facts.description),
            "description_withheld": facts.tlp in WITHHELD_TLP and bool(facts.description),
        },
        "agency": {"code": facts.agency_code, "name": facts.agency_name, "name_th": facts.agency_name_th},
        "asks": list(ASKS),
        "acknowledge": {"url": facts.ack_url, "expires_at": facts.ack_expires_at.isoformat()},
        "text": {"th": thai, "en": english},
    }
