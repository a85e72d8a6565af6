"""Every word the console shows, in Thai and English: the one place its translations live.

``text`` looks a message up by key and fills in its ``{names}``; ``label`` names a value of a vocabulary (an SLA
state, a milestone, a sector ...) and falls back to the value itself for one the catalogue does not know (a severity
a local policy added). ``explain`` turns an error the store raised into words for the page that caused it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from certmon.core.errors import CertmonError, Invalid

Lang = Literal["th", "en"]
LANGS: tuple[Lang, ...] = ("th", "en")
DEFAULT_LANG: Lang = "th"

# key: (Thai, English)
MESSAGES: dict[str, tuple[str, str]] = {
    # the frame of every page
    "skip": ("ข้ามไปยังเนื้อหา", "Skip to content"),
    "nav": ("เมนูหลัก", "Main menu"),
    "nav.queue": ("คิวงาน", "Queue"),
    "nav.new": ("บันทึกเหตุการณ์ใหม่", "New incident"),
    "nav.sla": ("ผลการดำเนินงาน SLA", "SLA"),
    "nav.agency": ("หน่วยงานของฉัน", "My agency"),
    "signed_in_as": ("ผู้ใช้ {name} ({role})", "Signed in as {name} ({role})"),
    "sign_out": ("ออกจากระบบ", "Sign out"),
    "other_lang": ("English", "ภาษาไทย"),
    "other_lang_name": ("อ่านหน้านี้เป็นภาษาอังกฤษ", "อ่านหน้านี้เป็นภาษาไทย"),
    "time_note": ("เวลาทั้งหมดเป็นเวลากรุงเทพฯ ({offset})", "All times are Bangkok time ({offset})"),
    "done": ("เสร็จแล้ว", "Done"),
    "any": ("ทั้งหมด", "All"),
    "choose": ("เลือกจากรายการ", "Choose from the list"),
    "none": ("-", "-"),
    "minutes": ("{n} นาที", "{n} min"),
    "hours": ("{n} ชั่วโมง", "{n} h"),
    "read_only": ("บทบาทของคุณดูข้อมูลได้อย่างเดียว", "Your role may only read."),
    # sign-in
    "login.title": ("เข้าสู่ระบบ certmon", "Sign in to certmon"),
    "login.intro": (
        "ใช้โทเค็นเดียวกับที่ใช้เรียก API ซึ่งได้รับจากผู้ดูแลระบบ",
        "Use the token you were given for the API by your administrator.",
    ),
    "login.token": ("โทเค็น", "Token"),
    "login.submit": ("เข้าสู่ระบบ", "Sign in"),
    "login.bad": ("โทเค็นไม่ถูกต้อง หรือถูกเพิกถอนแล้ว", "The token is unknown or has been revoked."),
    "login.expired": ("เซสชันสิ้นสุดแล้ว โปรดเข้าสู่ระบบอีกครั้ง", "Your session has ended. Please sign in again."),
    "login.bye": ("ออกจากระบบเรียบร้อยแล้ว", "You have signed out."),
    "login.rules": (
        "เซสชันจะสิ้นสุดเมื่อไม่มีการใช้งาน {idle} นาที และไม่เกิน {hours} ชั่วโมงหลังเข้าสู่ระบบ",
        "A session ends after {idle} minutes without use, and {hours} hours after signing in at the latest.",
    ),
    # the queue
    "queue.title": ("คิวงาน: นาฬิกา SLA ที่ยังเปิดอยู่", "Queue: open SLA clocks"),
    "queue.filters": ("ตัวกรอง", "Filters"),
    "queue.text": ("ค้นหาชื่อเรื่องหรือรหัสอ้างอิง", "Search title or external id"),
    "queue.apply": ("กรอง", "Apply filters"),
    "queue.clear": ("ล้างตัวกรอง", "Clear filters"),
    "queue.caption": ("นาฬิกาที่ครบกำหนดก่อนอยู่บนสุด", "Soonest due first"),
    "queue.empty": ("ไม่มีนาฬิกาที่เปิดอยู่ตามตัวกรองนี้", "No open clocks match these filters."),
    "queue.more": (
        "แสดง {n} รายการแรก ใช้ตัวกรองเพื่อดูรายการที่เหลือ",
        "Showing the first {n}; narrow the filters to see the rest.",
    ),
    "queue.live": ("หน้านี้อัปเดตเองทุก {s} วินาที", "This page updates itself every {s} seconds"),
    "queue.updated": ("อัปเดตล่าสุด {time}", "Last updated {time}"),
    "queue.ended": (
        "เซสชันสิ้นสุดแล้ว คิวงานจึงไม่อัปเดต โปรดโหลดหน้าใหม่เพื่อเข้าสู่ระบบ",
        "Your session has ended, so the queue no longer updates. Reload the page to sign in.",
    ),
    "queue.select": ("เลือก #{id} ({objective})", "Select #{id} ({objective})"),
    "queue.select_all": ("เลือกทุกแถว", "Select every row"),
    "queue.summary": ("สรุปตามสถานะ", "By state"),
    "bulk.title": ("ไม่นับรวมเหตุการณ์ที่เลือกใน SLA", "Exclude the selected incidents from the SLA"),
    "bulk.submit": ("ไม่นับรวมเหตุการณ์ที่เลือก", "Exclude the selected incidents"),
    "bulk.none": ("ยังไม่ได้เลือกเหตุการณ์", "No incident was selected."),
    "col.select": ("เลือก", "Select"),
    "col.left": ("เหลือเวลา (นาที)", "Time left (min)"),
    "col.state": ("สถานะ", "State"),
    "col.due": ("ครบกำหนด", "Due"),
    "col.incident": ("เหตุการณ์", "Incident"),
    "col.agency": ("หน่วยงาน", "Agency"),
    "col.sector": ("ภาคส่วน", "Sector"),
    "col.severity": ("ความรุนแรง", "Severity"),
    "col.category": ("ประเภท (RSIT)", "Category (RSIT)"),
    "col.objective": ("เป้าหมาย SLA", "Objective"),
    "col.started": ("เริ่มนับ", "Started"),
    "col.stopped": ("หยุดนับ", "Stopped"),
    "col.target": ("เวลาที่กำหนด", "Target"),
    "col.at": ("เวลา", "Time"),
    "col.what": ("รายการ", "What"),
    "col.actor": ("ผู้บันทึก", "By"),
    "col.why": ("เหตุผล / หมายเหตุ", "Reason / note"),
    "col.recorded": ("บันทึกเมื่อ", "Recorded"),
    "col.channel": ("ช่องทาง", "Channel"),
    "col.status": ("ผล", "Outcome"),
    "col.recipients": ("ผู้รับ", "Recipients"),
    "col.response": ("คำตอบจากปลายทาง", "Answer"),
    "col.compliance": ("ร้อยละที่ทันเวลา", "Compliance"),
    "col.colour": ("สถานะเทียบเป้าหมาย", "Status"),
    "col.met": ("ทันเวลา", "Met"),
    "col.breached": ("เกินกำหนด", "Breached"),
    "col.open": ("ยังเปิดอยู่", "Open"),
    "col.month": ("เดือน", "Month"),
    "col.responses": ("จำนวนผู้ตอบ", "Responses"),
    "col.satisfaction": ("ร้อยละความพึงพอใจ", "Satisfaction"),
    "col.band": ("ระดับ", "Level"),
    "col.service": ("บริการ", "Service"),
    "was": ("เดิม {time}", "was {time}"),
    # the incident page
    "incident.facts": ("ข้อมูลเหตุการณ์", "About the incident"),
    "incident.tlp": ("ระดับการเปิดเผย (TLP)", "Sharing (TLP)"),
    "incident.source": ("แหล่งที่มา", "Source"),
    "incident.external_id": ("รหัสอ้างอิงภายนอก", "External id"),
    "incident.description": ("รายละเอียด", "Description"),
    "incident.created_by": ("บันทึกโดย", "Recorded by"),
    "incident.excluded": ("ไม่นับรวมใน SLA: {reason}", "Excluded from the SLA: {reason}"),
    "incident.paused": ("หยุดนับเวลาตั้งแต่ {time}: {reason}", "Paused since {time}: {reason}"),
    "incident.resolved": ("แก้ไขเสร็จแล้วเมื่อ {time}", "Resolved at {time}"),
    "incident.clocks": ("นาฬิกา SLA", "SLA clocks"),
    "incident.timeline": ("ลำดับเหตุการณ์", "Timeline"),
    "incident.at_creation": ("บันทึกพร้อมการสร้างเหตุการณ์", "recorded at creation"),
    "record.title": ("บันทึกขั้นตอน ณ เวลานี้", "Record a milestone now"),
    "record.help": ("แต่ละปุ่มบันทึกขั้นตอนนั้น ณ เวลาที่กด", "Each button records its milestone at this moment."),
    "record_at.title": ("บันทึกขั้นตอนตามเวลาที่ระบุ", "Record a milestone at a given time"),
    "record_at.submit": ("บันทึกตามเวลาที่ระบุ", "Record at this time"),
    "field.milestone": ("ขั้นตอน", "Milestone"),
    "field.at": ("เวลา (เวลากรุงเทพฯ)", "Time (Bangkok)"),
    "field.reason": ("เหตุผล (จำเป็น)", "Reason (required)"),
    "field.note": ("หมายเหตุ (ไม่บังคับ)", "Note (optional)"),
    "field.comment": ("ความคิดเห็น", "Comment"),
    "correct.title": ("แก้ไขเวลาที่บันทึกไว้", "Correct a recorded time"),
    "correct.submit": ("บันทึกการแก้ไข", "Record the correction"),
    "exclude.title": ("ไม่นับรวมใน SLA", "Exclude from the SLA"),
    "exclude.submit": ("ไม่นับรวมใน SLA", "Exclude from the SLA"),
    "include.submit": ("นับรวมใน SLA อีกครั้ง", "Include in the SLA again"),
    "pause.title": ("หยุดนับเวลาระหว่างรอหน่วยงาน", "Pause while waiting for the agency"),
    "pause.submit": ("หยุดนับเวลา", "Pause"),
    "resume.submit": ("นับเวลาต่อ", "Resume"),
    "reopen.submit": ("เปิดเหตุการณ์อีกครั้ง", "Reopen"),
    "comment.title": ("เพิ่มความคิดเห็น", "Add a comment"),
    "comment.submit": ("เพิ่มความคิดเห็น", "Add the comment"),
    "notify.title": ("แจ้งหน่วยงาน", "Notify the agency"),
    "notify.channel": ("ช่องทาง", "Channel"),
    "notify.resend": ("ส่งซ้ำ แม้เคยส่งทางช่องทางนี้แล้ว", "Send again even if sent on this channel before"),
    "notify.submit": ("ส่งการแจ้งเตือน", "Send the notification"),
    "notify.reach": (
        "ผู้ติดต่อทางอีเมล {contacts} ราย เว็บฮุก: {webhook}",
        "{contacts} e-mail contacts; webhook: {webhook}",
    ),
    "notify.sent": ("การแจ้งเตือนที่ส่งแล้ว", "Notifications sent"),
    "yes": ("มี", "yes"),
    "no": ("ไม่มี", "no"),
    # outcomes of a form, shown after its redirect
    "done.recorded": ("บันทึกแล้ว", "Recorded."),
    "done.created": ("บันทึกเหตุการณ์ใหม่แล้ว", "The incident is recorded."),
    "done.excluded": ("ไม่นับรวมเหตุการณ์ที่เลือกแล้ว {n} รายการ", "{n} incidents excluded."),
    "done.sent": ("ส่งการแจ้งเตือนแล้ว", "The notification was sent."),
    "done.duplicate": (
        "เคยส่งการแจ้งเตือนทางช่องทางนี้แล้ว จึงไม่ได้ส่งซ้ำ",
        "A notification was sent on this channel before; nothing was sent again.",
    ),
    # the new incident form
    "new.title": ("บันทึกเหตุการณ์ใหม่", "Record a new incident"),
    "new.agency": ("หน่วยงาน (พิมพ์รหัสหรือชื่อเพื่อค้นหา)", "Agency (type a code or name to search)"),
    "new.title_field": ("ชื่อเรื่อง", "Title"),
    "new.category": ("ประเภท (RSIT)", "Category (RSIT)"),
    "new.tlp": ("ระดับการเปิดเผย (TLP)", "Sharing (TLP)"),
    "new.tlp_none": ("ไม่ระบุ", "Not set"),
    "new.severity": ("ความรุนแรง", "Severity"),
    "new.detected": ("เวลาที่ตรวจพบ (เวลากรุงเทพฯ)", "Detected at (Bangkok time)"),
    "new.external_id": ("รหัสอ้างอิงภายนอก (ไม่บังคับ)", "External id (optional)"),
    "new.description": ("รายละเอียด (ไม่บังคับ)", "Description (optional)"),
    "new.submit": ("บันทึกเหตุการณ์", "Record the incident"),
    # the SLA pages
    "sla.title": ("ผลการดำเนินงานตาม SLA", "SLA compliance"),
    "sla.agency_title": ("ผลการดำเนินงานตาม SLA ของ {name}", "SLA compliance of {name}"),
    "sla.month": ("เดือนนี้: {label}", "This month: {label}"),
    "sla.fiscal_year": ("ปีงบประมาณ {fy} ถึงปัจจุบัน", "Fiscal year {fy} to date"),
    "sla.kpi": ("ตัวชี้วัดหลัก: {label}", "Headline KPI: {label}"),
    "sla.target": ("เป้าหมาย {percent}%", "Target {percent} %"),
    "sla.met_of": ("ทันเวลา {met} จาก {decided} เหตุการณ์", "{met} of {decided} incidents on time"),
    "sla.open": ("ยังไม่ตัดสินผล {n} เหตุการณ์", "{n} not decided yet"),
    "sla.no_data": ("ยังไม่มีเหตุการณ์ที่ตัดสินผลได้", "Nothing decided yet"),
    "sla.recomputing": (
        "กำลังคำนวณนาฬิกา SLA ใหม่ตามนโยบายที่ใช้อยู่ เหลืออีก {n} เหตุการณ์ ตัวเลขในหน้านี้อาจยังเปลี่ยนแปลง",
        "Clocks are being recomputed under the policy in force, {n} incidents to go: the figures on this page may "
        "still change.",
    ),
    "sla.objectives": ("แต่ละเป้าหมาย SLA", "Each objective"),
    "sla.trend": ("แนวโน้มรายเดือน ปีงบประมาณ {fy}", "Monthly trend, fiscal year {fy}"),
    "sla.trend_desc": (
        "ร้อยละที่ทันเวลาของแต่ละเดือนเทียบกับเป้าหมาย {percent}%",
        "Compliance of each month against the {percent} % target",
    ),
    "sla.trend_table": ("ตัวเลขของกราฟ", "The chart's figures"),
    "sla.worst": ("หน่วยงานที่ต่ำกว่าเป้าหมายมากที่สุด (เดือนนี้)", "Agencies furthest below target (this month)"),
    "sla.worst_none": ("ไม่มีหน่วยงานที่ต่ำกว่าเป้าหมายในเดือนนี้", "No agency is below target this month."),
    "sla.sectors": ("ตามภาคส่วน", "By sector"),
    "sla.satisfaction": ("ความพึงพอใจ ปีงบประมาณ {fy}", "Satisfaction, fiscal year {fy}"),
    "sla.satisfaction_none": ("ยังไม่มีผลสำรวจในปีงบประมาณนี้", "No survey responses this fiscal year yet."),
    "sla.all_services": ("ทุกบริการ", "All services"),
    "sla.cii": ("โครงสร้างพื้นฐานสำคัญทางสารสนเทศ (CII)", "Critical information infrastructure (CII)"),
    "sla.agency_queue": ("ดูนาฬิกาที่เปิดอยู่ของหน่วยงานนี้ในคิวงาน", "See this agency's open clocks in the queue"),
    # errors
    "error.title": ("ทำรายการไม่สำเร็จ", "That did not work"),
    "error.field": ("ช่อง {field}", "Field {field}"),
    "error.back": ("กลับไปที่คิวงาน", "Back to the queue"),
    "error.details": ("รายละเอียดทางเทคนิค", "Technical detail"),
}

# Vocabularies: group -> value -> (Thai, English)
LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "state": {
        "pending": ("ยังไม่ถึงกำหนด", "Pending"),
        "at_risk": ("ใกล้ครบกำหนด", "At risk"),
        "paused": ("หยุดนับเวลา", "Paused"),
        "breached": ("เกินกำหนด", "Breached"),
        "met": ("ทันเวลา", "Met"),
        "excluded": ("ไม่นับรวม", "Excluded"),
        "no_clock": ("ยังไม่เริ่มนับ", "Not started"),
    },
    "milestone": {
        "detected": ("ตรวจพบ", "Detected"),
        "analysed": ("วิเคราะห์แล้ว", "Analysed"),
        "notified": ("แจ้งแล้ว", "Notified"),
        "acknowledged": ("รับทราบแล้ว", "Acknowledged"),
        "contained": ("ระงับเหตุแล้ว", "Contained"),
        "resolved": ("แก้ไขเสร็จแล้ว", "Resolved"),
        "paused": ("เริ่มหยุดนับเวลา", "Pause began"),
        "resumed": ("นับเวลาต่อ", "Pause ended"),
    },
    "event": {
        "reopened": ("เปิดเหตุการณ์อีกครั้ง", "Reopened"),
        "excluded": ("ไม่นับรวมใน SLA", "Excluded from the SLA"),
        "included": ("นับรวมใน SLA อีกครั้ง", "Included in the SLA again"),
        "paused": ("หยุดนับเวลา", "Paused"),
        "resumed": ("นับเวลาต่อ", "Resumed"),
        "comment": ("ความคิดเห็น", "Comment"),
        "correction": ("แก้ไขเวลา", "Correction"),
        "notification_sent": ("ส่งการแจ้งเตือนแล้ว", "Notification sent"),
        "notification_failed": ("ส่งการแจ้งเตือนไม่สำเร็จ", "Notification failed"),
    },
    "severity": {
        "critical": ("วิกฤต", "Critical"),
        "high": ("สูง", "High"),
        "medium": ("ปานกลาง", "Medium"),
        "low": ("ต่ำ", "Low"),
    },
    "sector": {
        "national-security": ("ความมั่นคงของรัฐ", "National security"),
        "public-services": ("บริการภาครัฐที่สำคัญ", "Essential public services"),
        "banking-finance": ("การเงินการธนาคาร", "Banking and finance"),
        "it-telecom": ("เทคโนโลยีสารสนเทศและโทรคมนาคม", "IT and telecommunications"),
        "transport-logistics": ("การขนส่งและโลจิสติกส์", "Transport and logistics"),
        "energy-utilities": ("พลังงานและสาธารณูปโภค", "Energy and utilities"),
        "public-health": ("สาธารณสุข", "Public health"),
        "other-cii": ("โครงสร้างพื้นฐานสำคัญอื่น", "Other CII"),
        "government": ("หน่วยงานของรัฐ", "Government"),
    },
    "role": {
        "admin": ("ผู้ดูแลระบบ", "administrator"),
        "analyst": ("นักวิเคราะห์", "analyst"),
        "auditor": ("ผู้ตรวจสอบ", "auditor"),
        "agency": ("หน่วยงาน", "agency"),
    },
    "colour": {
        "green": ("เขียว: ผ่านเป้าหมาย", "Green: on target"),
        "yellow": ("เหลือง: ต่ำกว่าเป้าหมายเล็กน้อย", "Yellow: a little below target"),
        "red": ("แดง: ต่ำกว่าเป้าหมาย", "Red: below target"),
    },
    "band": {
        "very good": ("ดีมาก", "very good"),
        "good": ("ดี", "good"),
        "fair": ("พอใช้", "fair"),
        "poor": ("ต้องปรับปรุง", "poor"),
        "very poor": ("ต้องปรับปรุงเร่งด่วน", "very poor"),
    },
    "channel": {"email": ("อีเมล", "E-mail"), "webhook": ("เว็บฮุก", "Webhook")},
    "sent": {"sending": ("กำลังส่ง", "sending"), "sent": ("ส่งสำเร็จ", "sent"), "failed": ("ไม่สำเร็จ", "failed")},
    "status": {
        "400": ("คำขอไม่ถูกต้อง", "Bad request"),
        "401": ("ต้องเข้าสู่ระบบก่อน", "Sign-in needed"),
        "403": ("ไม่มีสิทธิ์ทำรายการนี้", "Not allowed"),
        "404": ("ไม่พบสิ่งที่ขอ", "Not found"),
        "405": ("ทำรายการนี้ไม่ได้", "Not allowed here"),
        "409": ("ขัดกับข้อมูลที่บันทึกไว้", "Conflicts with what is recorded"),
        "413": ("ข้อมูลใหญ่เกินไป", "Too large"),
        "422": ("ข้อมูลไม่ถูกต้อง", "Not valid"),
        "500": ("เกิดข้อผิดพลาดภายในระบบ", "Something went wrong on our side"),
        "502": ("ปลายทางไม่รับการแจ้งเตือน", "The notification was not accepted"),
        "503": ("ระบบไม่พร้อมใช้งานชั่วคราว", "Temporarily unavailable"),
    },
    "field": {
        "at": ("เวลา", "time"),
        "reason": ("เหตุผล", "reason"),
        "note": ("หมายเหตุ", "note"),
        "milestone": ("ขั้นตอน", "milestone"),
        "channel": ("ช่องทาง", "channel"),
        "agency": ("หน่วยงาน", "agency"),
        "title": ("ชื่อเรื่อง", "title"),
        "category": ("ประเภท", "category"),
        "severity": ("ความรุนแรง", "severity"),
        "tlp": ("TLP", "TLP"),
        "detected_at": ("เวลาที่ตรวจพบ", "detection time"),
        "external_id": ("รหัสอ้างอิงภายนอก", "external id"),
        "description": ("รายละเอียด", "description"),
        "ids": ("เหตุการณ์ที่เลือก", "selected incidents"),
        "type": ("รายการ", "event"),
        "csrf": ("โทเค็นของแบบฟอร์ม", "form token"),
        "token": ("โทเค็น", "token"),
    },
}

# What the store and the notifier say, matched on their English detail, as a reader of the page should hear it.
ERRORS: tuple[tuple[re.Pattern[str], tuple[str, str]], ...] = tuple(
    (re.compile(pattern), texts)
    for pattern, texts in (
        (
            r"^(?P<milestone>\w+) is already recorded",
            (
                "ขั้นตอน “{milestone}” บันทึกไว้แล้ว หากต้องการเปลี่ยนเวลา ให้ใช้ “แก้ไขเวลาที่บันทึกไว้” พร้อมเหตุผล",
                "“{milestone}” is recorded already; to change its time, use “Correct a recorded time” with a reason.",
            ),
        ),
        (
            r"earlier than detected",
            ("เวลาที่ระบุเร็วกว่าเวลาที่ตรวจพบเหตุการณ์", "The time given is earlier than the incident was detected."),
        ),
        (
            r"earlier than the pause began",
            ("เวลาที่ระบุเร็วกว่าเวลาที่เริ่มหยุดนับ", "The time given is earlier than the pause began."),
        ),
        (r"in the future", ("เวลาที่ระบุอยู่ในอนาคต", "The time given is in the future.")),
        (r"would overlap pause", ("ช่วงหยุดนับเวลาจะซ้อนกับช่วงอื่น", "The pause would overlap another pause.")),
        (r"end before it began", ("ช่วงหยุดนับเวลาจะจบก่อนเริ่ม", "The pause would end before it began.")),
        (r"is paused already", ("เหตุการณ์นี้หยุดนับเวลาอยู่แล้ว", "The incident is paused already.")),
        (r"is not paused", ("เหตุการณ์นี้ไม่ได้หยุดนับเวลาอยู่", "The incident is not paused.")),
        (r"never paused", ("เหตุการณ์นี้ไม่เคยหยุดนับเวลา", "The incident was never paused.")),
        (r"has not ended", ("ช่วงหยุดนับเวลายังไม่จบ", "The pause has not ended yet.")),
        (r"is not resolved", ("เหตุการณ์นี้ยังไม่ได้แก้ไขเสร็จ", "The incident is not resolved.")),
        (
            r"is resolved; reopen",
            ("เหตุการณ์นี้แก้ไขเสร็จแล้ว ต้องเปิดอีกครั้งก่อน", "The incident is resolved; reopen it first."),
        ),
        (r"has no webhook", ("หน่วยงานนี้ยังไม่มีเว็บฮุก", "This agency has no webhook.")),
        (r"has no e-mail contacts", ("หน่วยงานนี้ยังไม่มีผู้ติดต่อทางอีเมล", "This agency has no e-mail contacts.")),
        (
            r"no SMTP server is configured",
            ("ยังไม่ได้ตั้งค่าเซิร์ฟเวอร์อีเมล (CERTMON_SMTP_URL)", "No mail server is set up (CERTMON_SMTP_URL)."),
        ),
        (
            r"is being sent",
            (
                "กำลังส่งการแจ้งเตือนทางช่องทางนี้อยู่ โปรดลองอีกครั้งภายหลัง",
                "A notification is being sent on this channel; try again shortly.",
            ),
        ),
        (
            r"notification was not accepted",
            (
                "เซิร์ฟเวอร์อีเมลหรือเว็บฮุกของหน่วยงานไม่รับการแจ้งเตือน บันทึกความล้มเหลวไว้ในลำดับเหตุการณ์แล้ว",
                "The mail server or the agency's webhook refused it; the failure is in the timeline.",
            ),
        ),
        (
            r"an agency may record only",
            (
                "หน่วยงานบันทึกได้เฉพาะการรับทราบ การระงับเหตุ การแก้ไขเสร็จ และความคิดเห็น",
                "An agency may record only acknowledged, contained, resolved and comments.",
            ),
        ),
        (r"may not do this", ("บทบาทของคุณทำรายการนี้ไม่ได้", "Your role may not do this.")),
        (r"^no incident", ("ไม่พบเหตุการณ์นี้", "There is no such incident.")),
        (r"^no agency", ("ไม่พบหน่วยงานนี้", "There is no such agency.")),
        (r"unknown agency", ("ไม่รู้จักหน่วยงานนี้ เลือกจากรายการ", "Unknown agency; pick one from the list.")),
        (
            r"exists with a different body",
            ("มีเหตุการณ์ที่ใช้รหัสอ้างอิงนี้อยู่แล้ว", "An incident with this external id exists already."),
        ),
        (r"is required", ("ต้องกรอกช่องนี้", "This field is required.")),
        (r"is not a time", ("เวลาไม่ถูกต้อง ให้ระบุวันที่และเวลา ชั่วโมง:นาที", "Not a time: give a date and hh:mm.")),
        (r"must be one of|not one of", ("เลือกค่าจากรายการ", "Choose a value from the list.")),
        (
            r"form token",
            (
                "แบบฟอร์มนี้หมดอายุหรือไม่ได้มาจาก certmon โปรดโหลดหน้าใหม่แล้วลองอีกครั้ง",
                "This form has expired or did not come from certmon. Reload the page and try again.",
            ),
        ),
        (r"(?i)^(string|value) should have at least", ("ต้องกรอกช่องนี้", "This field is required.")),
        (r"(?i)at most|too long", ("ข้อความยาวเกินไป", "The text is too long.")),
    )
)


def text(lang: Lang, key: str, **values: object) -> str:
    """The message ``key`` in ``lang``, its ``{names}`` filled in; an unknown key is a KeyError, caught by tests."""
    th, en = MESSAGES[key]
    template = th if lang == "th" else en
    return template.format(**values) if values else template


def label(lang: Lang, group: str, value: str | None) -> str:
    """The name of a vocabulary's value, or the value itself when the catalogue does not know it."""
    if value is None:
        return "-"
    pair = LABELS[group].get(value)
    if pair is None:
        return value
    return pair[0] if lang == "th" else pair[1]


@dataclass(frozen=True, slots=True)
class Explained:
    """An error as a page shows it: a heading, a sentence, the field concerned, and the original detail."""

    title: str
    message: str
    field: str | None
    detail: str
    status: int


def explain(lang: Lang, error: CertmonError) -> Explained:
    field = error.field if isinstance(error, Invalid) else None
    detail = error.detail
    if field is not None:
        detail = detail.removeprefix(f"{field}: ")
    message = detail
    for pattern, pair in ERRORS:
        found = pattern.search(detail)
        if found is not None:
            names = {k: label(lang, "milestone", v) for k, v in found.groupdict().items()}
            message = (pair[0] if lang == "th" else pair[1]).format(**names)
            break
    return Explained(
        title=label(lang, "status", str(error.status)),
        message=message,
        field=None if field is None else label(lang, "field", field.split(".")[0]),
        detail=error.detail,
        status=error.status,
    )
