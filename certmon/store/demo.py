"""Demo data: ~250 agencies and incidents over the previous and the current Thai fiscal year."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog

from certmon.core.clocks import Clocks
from certmon.core.models import AgencyIn, EventIn, IncidentIn, Sector
from certmon.core.periods import Period, fiscal_year_of, fiscal_year_period, months_in
from certmon.core.policy import SCALE_POINTS, Policy
from certmon.core.satisfaction import MAX_BULK_LINES, ResponseIn, insert_args
from certmon.core.taxonomy import rsit_categories
from certmon.store import bulk, db, incidents, surveys
from certmon.store.agencies import save_agency
from certmon.store.bulk import BulkOutcome
from certmon.store.db import Queries

log = structlog.get_logger("certmon.demo")
SEED = 2564  # the same demo every time

# The 77 provinces, Bangkok first: (English, Thai). Bangkok is not a changwat: its Thai names drop จังหวัด.
PROVINCES: tuple[tuple[str, str], ...] = (
    ("Bangkok", "กรุงเทพมหานคร"),
    ("Chiang Mai", "เชียงใหม่"),
    ("Chiang Rai", "เชียงราย"),
    ("Lampang", "ลำปาง"),
    ("Lamphun", "ลำพูน"),
    ("Phayao", "พะเยา"),
    ("Phrae", "แพร่"),
    ("Nan", "น่าน"),
    ("Mae Hong Son", "แม่ฮ่องสอน"),
    ("Uttaradit", "อุตรดิตถ์"),
    ("Sukhothai", "สุโขทัย"),
    ("Tak", "ตาก"),
    ("Phitsanulok", "พิษณุโลก"),
    ("Phichit", "พิจิตร"),
    ("Phetchabun", "เพชรบูรณ์"),
    ("Kamphaeng Phet", "กำแพงเพชร"),
    ("Nakhon Sawan", "นครสวรรค์"),
    ("Uthai Thani", "อุทัยธานี"),
    ("Chai Nat", "ชัยนาท"),
    ("Sing Buri", "สิงห์บุรี"),
    ("Ang Thong", "อ่างทอง"),
    ("Lop Buri", "ลพบุรี"),
    ("Saraburi", "สระบุรี"),
    ("Ayutthaya", "พระนครศรีอยุธยา"),
    ("Pathum Thani", "ปทุมธานี"),
    ("Nonthaburi", "นนทบุรี"),
    ("Nakhon Pathom", "นครปฐม"),
    ("Samut Sakhon", "สมุทรสาคร"),
    ("Samut Prakan", "สมุทรปราการ"),
    ("Samut Songkhram", "สมุทรสงคราม"),
    ("Ratchaburi", "ราชบุรี"),
    ("Kanchanaburi", "กาญจนบุรี"),
    ("Suphan Buri", "สุพรรณบุรี"),
    ("Phetchaburi", "เพชรบุรี"),
    ("Prachuap Khiri Khan", "ประจวบคีรีขันธ์"),
    ("Chachoengsao", "ฉะเชิงเทรา"),
    ("Chon Buri", "ชลบุรี"),
    ("Rayong", "ระยอง"),
    ("Chanthaburi", "จันทบุรี"),
    ("Trat", "ตราด"),
    ("Prachin Buri", "ปราจีนบุรี"),
    ("Sa Kaeo", "สระแก้ว"),
    ("Nakhon Nayok", "นครนายก"),
    ("Nakhon Ratchasima", "นครราชสีมา"),
    ("Buri Ram", "บุรีรัมย์"),
    ("Surin", "สุรินทร์"),
    ("Si Sa Ket", "ศรีสะเกษ"),
    ("Ubon Ratchathani", "อุบลราชธานี"),
    ("Yasothon", "ยโสธร"),
    ("Amnat Charoen", "อำนาจเจริญ"),
    ("Chaiyaphum", "ชัยภูมิ"),
    ("Khon Kaen", "ขอนแก่น"),
    ("Udon Thani", "อุดรธานี"),
    ("Loei", "เลย"),
    ("Nong Khai", "หนองคาย"),
    ("Bueng Kan", "บึงกาฬ"),
    ("Nong Bua Lam Phu", "หนองบัวลำภู"),
    ("Sakon Nakhon", "สกลนคร"),
    ("Nakhon Phanom", "นครพนม"),
    ("Mukdahan", "มุกดาหาร"),
    ("Kalasin", "กาฬสินธุ์"),
    ("Maha Sarakham", "มหาสารคาม"),
    ("Roi Et", "ร้อยเอ็ด"),
    ("Chumphon", "ชุมพร"),
    ("Ranong", "ระนอง"),
    ("Surat Thani", "สุราษฎร์ธานี"),
    ("Phangnga", "พังงา"),
    ("Phuket", "ภูเก็ต"),
    ("Krabi", "กระบี่"),
    ("Nakhon Si Thammarat", "นครศรีธรรมราช"),
    ("Trang", "ตรัง"),
    ("Phatthalung", "พัทลุง"),
    ("Satun", "สตูล"),
    ("Songkhla", "สงขลา"),
    ("Pattani", "ปัตตานี"),
    ("Yala", "ยะลา"),
    ("Narathiwat", "นราธิวาส"),
)

# A few national bodies per CII sector: (code, English name, Thai name, sector).
NATIONAL: tuple[tuple[str, str, str, Sector], ...] = (
    ("MOD", "Ministry of Defence", "กระทรวงกลาโหม", "national-security"),
    ("NSC", "Office of the National Security Council", "สำนักงานสภาความมั่นคงแห่งชาติ", "national-security"),
    ("RTP", "Royal Thai Police", "สำนักงานตำรวจแห่งชาติ", "national-security"),
    ("DOPA", "Department of Provincial Administration", "กรมการปกครอง", "public-services"),
    ("RD", "The Revenue Department", "กรมสรรพากร", "public-services"),
    ("SSO", "Social Security Office", "สำนักงานประกันสังคม", "public-services"),
    ("BOT", "Bank of Thailand", "ธนาคารแห่งประเทศไทย", "banking-finance"),
    ("MOF", "Ministry of Finance", "กระทรวงการคลัง", "banking-finance"),
    ("SEC", "Securities and Exchange Commission", "สำนักงานคณะกรรมการกำกับหลักทรัพย์และตลาดหลักทรัพย์", "banking-finance"),
    ("GSB", "Government Savings Bank", "ธนาคารออมสิน", "banking-finance"),
    ("MDES", "Ministry of Digital Economy and Society", "กระทรวงดิจิทัลเพื่อเศรษฐกิจและสังคม", "it-telecom"),
    ("NBTC", "Office of the NBTC", "สำนักงาน กสทช.", "it-telecom"),
    ("NT", "National Telecom", "บริษัท โทรคมนาคมแห่งชาติ จำกัด (มหาชน)", "it-telecom"),
    ("DGA", "Digital Government Development Agency", "สำนักงานพัฒนารัฐบาลดิจิทัล", "it-telecom"),
    ("MOT", "Ministry of Transport", "กระทรวงคมนาคม", "transport-logistics"),
    ("SRT", "State Railway of Thailand", "การรถไฟแห่งประเทศไทย", "transport-logistics"),
    ("AOT", "Airports of Thailand", "บริษัท ท่าอากาศยานไทย จำกัด (มหาชน)", "transport-logistics"),
    ("EGAT", "Electricity Generating Authority of Thailand", "การไฟฟ้าฝ่ายผลิตแห่งประเทศไทย", "energy-utilities"),
    ("PEA", "Provincial Electricity Authority", "การไฟฟ้าส่วนภูมิภาค", "energy-utilities"),
    ("MEA", "Metropolitan Electricity Authority", "การไฟฟ้านครหลวง", "energy-utilities"),
    ("PWA", "Provincial Waterworks Authority", "การประปาส่วนภูมิภาค", "energy-utilities"),
    ("MOPH", "Ministry of Public Health", "กระทรวงสาธารณสุข", "public-health"),
    ("NHSO", "National Health Security Office", "สำนักงานหลักประกันสุขภาพแห่งชาติ", "public-health"),
    ("GPO", "Government Pharmaceutical Organization", "องค์การเภสัชกรรม", "public-health"),
)
CATEGORY_WEIGHTS = {
    "malicious-code/infected-system": 20, "fraud/phishing": 18, "information-gathering/scanner": 15,
    "intrusion-attempts/brute-force": 10, "intrusion-attempts/exploit": 8, "availability/ddos": 6,
    "intrusions/application-compromise": 6, "malicious-code/c2-server": 5, "vulnerable/vulnerable-system": 5,
    "information-content-security/data-leak": 3, "abusive-content/spam": 3, "intrusions/system-compromise": 1,
}  # fmt: skip
EXCLUSION_REASONS = ("false positive", "duplicate of an earlier alert", "test alert from the sensor team")


def agencies(count: int = 250) -> list[AgencyIn]:
    found = [
        AgencyIn(
            code=code,
            name=name,
            name_th=name_th,
            sector=sector,
            cii=True,
            networks=[f"10.{i}.0.0/16"],
        )
        for i, (code, name, name_th, sector) in enumerate(NATIONAL, start=1)
    ]
    rng = random.Random(SEED)
    for i, (province, province_th) in enumerate(PROVINCES, start=1):
        found.append(
            AgencyIn(
                code=f"PAO{i:02d}",
                name=f"Provincial Administration Office, {province}",
                name_th="ศาลาว่าการกรุงเทพมหานคร" if i == 1 else f"ศาลากลางจังหวัด{province_th}",
                sector="government",
                networks=[f"172.16.{i}.0/24"],
            )
        )
    # Thai names put the office before the place, as "สำนักงานที่ดินจังหวัดเชียงใหม่".
    kinds: tuple[tuple[str, str, str, Sector, bool], ...] = (
        ("HOSP", "Provincial Hospital", "โรงพยาบาลประจำ", "public-health", True),
        ("EDU", "Provincial Education Office", "สำนักงานศึกษาธิการ", "government", False),
        ("LND", "Provincial Land Office", "สำนักงานที่ดิน", "public-services", False),
    )
    n = 0
    while len(found) < count:
        prefix, name, name_th, sector, cii = kinds[n % len(kinds)]
        province, province_th = PROVINCES[(n // len(kinds)) % len(PROVINCES)]
        place = province_th if province == "Bangkok" else f"จังหวัด{province_th}"
        n += 1
        found.append(
            AgencyIn(
                code=f"{prefix}{n:03d}",
                name=f"{name}, {province}",
                name_th=f"{name_th}{place}",
                sector=sector,
                cii=cii,
                networks=[f"192.168.{n % 256}.0/24"],
            )
        )
    rng.shuffle(found)
    return found[:count]


def prompt_delay(rng: random.Random) -> float:
    """Seconds from detection to notification for an alert handled on time: median about 17 minutes."""
    while (delay := rng.lognormvariate(6.9, 0.55)) >= 3600:
        pass
    return delay


def incidents_for(agency_list: list[AgencyIn], policy: Policy, now: datetime, rng: random.Random) -> list[IncidentIn]:
    """Every agency in most months; most notified within the hour, some late, the newest still open."""
    start = fiscal_year_period(fiscal_year_of(now, policy.tz) - 1, policy.tz).start
    categories = [c for c in CATEGORY_WEIGHTS if c in rsit_categories()]
    weights = [CATEGORY_WEIGHTS[c] for c in categories]
    severities = list(policy.severities)
    sev_weights = [1, 3, 6, 4][: len(severities)] + [4] * max(0, len(severities) - 4)
    out = []
    span = (now - start).total_seconds()
    for agency in agency_list:
        sloppiness = rng.betavariate(1.2, 70)  # most agencies' notifications are prompt; a few are often late
        count = int(span / 86400 / 30 * rng.uniform(1.5, 4.5))
        for k in range(count):
            detected = start + timedelta(seconds=rng.uniform(0, span - 120))
            age = (now - detected).total_seconds()
            late = rng.random() < sloppiness
            notify_after = rng.uniform(3700, 4 * 3600) if late else prompt_delay(rng)
            analysed = detected + timedelta(seconds=notify_after * rng.uniform(0.2, 0.7))
            notified = detected + timedelta(seconds=notify_after)
            category = rng.choices(categories, weights)[0]
            still_open = age < 3 * 3600 and rng.random() < 0.6
            unresolved_late = rng.random() < 0.002
            fields: dict[str, Any] = {
                "agency": agency.code,
                "title": f"{category.split('/')[1].replace('-', ' ').capitalize()} at {agency.code}",
                "severity": rng.choices(severities, sev_weights)[0],
                "category": category,
                "detected_at": detected,
                "source": "demo",
                "external_id": f"{agency.code}-{k}",
                "tlp": rng.choice(("TLP:AMBER", "TLP:GREEN", "TLP:AMBER+STRICT", "TLP:CLEAR")),
            }
            if not still_open and not unresolved_late:
                fields["analysed_at"] = min(analysed, now)
                if notified <= now:
                    fields["notified_at"] = notified
                    fields["acknowledged_at"] = min(notified + timedelta(minutes=rng.uniform(3, 75)), now)
                    resolved = notified + timedelta(hours=rng.uniform(2, 96))
                    if resolved <= now:
                        fields["contained_at"] = notified + (resolved - notified) / 2
                        fields["resolved_at"] = resolved
            out.append(IncidentIn.model_validate(fields))
    out.extend(live_incidents(agency_list, severities, now, rng))
    return out


def live_incidents(
    agency_list: list[AgencyIn], severities: list[str], now: datetime, rng: random.Random
) -> list[IncidentIn]:
    """Alerts of the last hours still waiting for notification, so the duty view shows every state right away."""
    minutes_ago = (4, 12, 25, 38, 47, 52, 58, 75, 130, 170)
    return [
        IncidentIn(
            agency=agency.code,
            title=f"Suspicious outbound traffic at {agency.code}",
            severity=rng.choice(severities[:2]),
            category="malicious-code/c2-server",
            detected_at=now - timedelta(minutes=minutes),
            source="demo",
            external_id=f"{agency.code}-live-{minutes}",
            tlp="TLP:AMBER",
        )
        for agency, minutes in zip(rng.sample(agency_list, len(minutes_ago)), minutes_ago, strict=True)
    ]


async def load(conn: asyncpg.Connection, q: db.Queries, policy: Policy, now: datetime) -> int:
    """Fill an empty database; returns how many incidents were stored (0 if it held agencies already)."""
    if await conn.fetchval("SELECT count(*) FROM agencies"):
        return 0
    rng = random.Random(SEED)
    agency_list = agencies()

    for agency in agency_list:
        await save_agency(conn, q, agency, create=True)
    data = incidents_for(agency_list, policy, now, rng)
    outcome = bulk.BulkOutcome()
    clocks = Clocks(policy)
    for chunk in range(0, len(data), bulk.MAX_LINES):
        batch = data[chunk : chunk + bulk.MAX_LINES]
        rows = [(i, *clocks.insert_args(d, "demo")) for i, d in enumerate(batch)]
        await bulk.store(conn, q, rows, outcome)
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM incidents ORDER BY id")]
    for incident_id in rng.sample(ids, k=len(ids) // 80):
        reason = rng.choice(EXCLUSION_REASONS)
        event = EventIn(type="excluded", reason=reason, note="closed by the duty analyst")
        await incidents.add_event(conn, q, policy, incident_id, event, "demo", now)
    await demo_pauses(conn, q, policy, now)
    await demo_responses(conn, q, policy, now, rng)
    return outcome.accepted


PAUSE_REASONS = (
    "waiting for the agency's firewall logs",
    "agency's administrator on leave until tomorrow",
    "waiting for remote access to the affected server",
)


async def demo_pauses(conn: asyncpg.Connection, q: db.Queries, policy: Policy, now: datetime) -> None:
    """Pause a few notified, not yet contained incidents of the last days, so paused clocks show in the demo."""
    rng = random.Random(SEED + 1)  # its own sequence: the other demo figures stay as they were
    rows = await conn.fetch(q["incidents_notified_not_contained"], now - timedelta(days=3))
    for row in rng.sample(list(rows), k=min(len(rows), 6)):
        paused = row["notified_at"] + (now - row["notified_at"]) * rng.uniform(0.2, 0.6)
        event = EventIn(type="paused", at=paused, reason=rng.choice(PAUSE_REASONS))
        await incidents.add_event(conn, q, policy, row["id"], event, "demo", now)


# Demo answers: a latent score per response, answers scattered around it. With these figures the fiscal-year
# satisfaction lands near the FY2564 report's (85.2 % security, 87.2 % CII), and agencies in a month with a breached
# incident answer about a third of a point lower.
DEMO_BASE = {"security-services": 4.35, "cii-services": 4.40}


DEMO_BREACH_PENALTY = 0.35


DEMO_AGENCY_SPREAD = 0.12  # standard deviation of an agency's habitual leniency, in points


DEMO_ANSWER_SPREAD = 0.65


DEMO_RESPONSE_CHANCE = {"security-services": 0.45, "cii-services": 0.55}  # per agency and month


def _demo_score(rng: random.Random, latent: float) -> int:
    return min(SCALE_POINTS, max(1, round(rng.gauss(latent, DEMO_ANSWER_SPREAD))))


async def demo_responses(
    conn: asyncpg.Connection, q: Queries, policy: Policy, now: datetime, rng: random.Random
) -> int:
    """Responses of every agency over the demo span (previous and current fiscal year): CII agencies answer both."""
    first = fiscal_year_period(fiscal_year_of(now, policy.tz) - 1, policy.tz)
    agencies = await conn.fetch(q["survey_demo_agencies"], policy.timezone)
    months = months_in(Period("demo", first.start, now))
    rows: list[tuple[Any, ...]] = []
    for agency in agencies:
        bias = rng.gauss(0, DEMO_AGENCY_SPREAD)
        breached = set(agency["breached_months"])
        for name, service in policy.surveys.services.items():
            if name == "cii-services" and not agency["cii"]:
                continue
            base = DEMO_BASE.get(name, 4.3)
            for month in months:
                if rng.random() > DEMO_RESPONSE_CHANCE.get(name, 0.4):
                    continue
                end = min(month.end, now)
                at = month.start + (end - month.start) * rng.random()
                latent = base + bias - (DEMO_BREACH_PENALTY if month.label in breached else 0.0)
                data = ResponseIn(
                    service=name,
                    agency=agency["code"],
                    submitted_at=at,
                    answers={question: _demo_score(rng, latent) for question in service.question_ids()},
                    channel=rng.choice(("web", "web", "paper")),
                    external_id=f"demo-{agency['code']}-{month.label}",
                )
                rows.append((len(rows) + 1, *insert_args(policy, data, "demo")))
    outcome = BulkOutcome()
    for start in range(0, len(rows), MAX_BULK_LINES):
        await surveys.store(conn, q, rows[start : start + MAX_BULK_LINES], outcome)
    return outcome.accepted
