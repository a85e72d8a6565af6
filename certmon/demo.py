"""Demo data: ~250 agencies and incidents over the previous and the current Thai fiscal year."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from certmon import appkeys, bulk, db, incidents
from certmon.api.agencies import save_agency
from certmon.auth import create_token, default_token_name
from certmon.models import AgencyIn, EventIn, IncidentIn, Sector
from certmon.periods import fiscal_year_of, fiscal_year_period
from certmon.policy import Policy
from certmon.taxonomy import rsit_categories

log = structlog.get_logger("certmon.demo")
SEED = 2564  # the same demo every time

PROVINCES = (
    "Bangkok", "Chiang Mai", "Chiang Rai", "Lampang", "Lamphun", "Phayao", "Phrae", "Nan", "Mae Hong Son", "Uttaradit",
    "Sukhothai", "Tak", "Phitsanulok", "Phichit", "Phetchabun", "Kamphaeng Phet", "Nakhon Sawan", "Uthai Thani",
    "Chai Nat", "Sing Buri", "Ang Thong", "Lop Buri", "Saraburi", "Ayutthaya", "Pathum Thani", "Nonthaburi",
    "Nakhon Pathom", "Samut Sakhon", "Samut Prakan", "Samut Songkhram", "Ratchaburi", "Kanchanaburi",
    "Suphan Buri", "Phetchaburi", "Prachuap Khiri Khan", "Chachoengsao", "Chon Buri", "Rayong", "Chanthaburi",
    "Trat", "Prachin Buri", "Sa Kaeo", "Nakhon Nayok", "Nakhon Ratchasima", "Buri Ram", "Surin", "Si Sa Ket",
    "Ubon Ratchathani", "Yasothon", "Amnat Charoen", "Chaiyaphum", "Khon Kaen", "Udon Thani", "Loei",
    "Nong Khai", "Bueng Kan", "Nong Bua Lam Phu", "Sakon Nakhon", "Nakhon Phanom", "Mukdahan", "Kalasin",
    "Maha Sarakham", "Roi Et", "Chumphon", "Ranong", "Surat Thani", "Phangnga", "Phuket", "Krabi",
    "Nakhon Si Thammarat", "Trang", "Phatthalung", "Satun", "Songkhla", "Pattani", "Yala", "Narathiwat",
)  # fmt: skip

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
DemoExtension = Callable[[asyncpg.Connection, db.Queries, Policy, datetime, random.Random], Any]


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
    for i, province in enumerate(PROVINCES, start=1):
        found.append(
            AgencyIn(
                code=f"PAO{i:02d}",
                name=f"Provincial Administration Office, {province}",
                name_th=f"ศาลากลางจังหวัด{province}",
                sector="government",
                networks=[f"172.16.{i}.0/24"],
            )
        )
    kinds: tuple[tuple[str, str, str, Sector, bool], ...] = (
        ("HOSP", "Provincial Hospital", "โรงพยาบาล", "public-health", True),
        ("EDU", "Provincial Education Office", "สำนักงานศึกษาธิการจังหวัด", "government", False),
        ("LND", "Provincial Land Office", "สำนักงานที่ดินจังหวัด", "public-services", False),
    )
    n = 0
    while len(found) < count:
        prefix, name, name_th, sector, cii = kinds[n % len(kinds)]
        province = PROVINCES[(n // len(kinds)) % len(PROVINCES)]
        n += 1
        found.append(
            AgencyIn(
                code=f"{prefix}{n:03d}",
                name=f"{name}, {province}",
                name_th=f"{name_th}{province}",
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
                    fields["acknowledged_at"] = min(notified + timedelta(minutes=rng.uniform(5, 240)), now)
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
    clocks = incidents.Clocks(policy)
    for chunk in range(0, len(data), bulk.MAX_LINES):
        batch = data[chunk : chunk + bulk.MAX_LINES]
        rows = [(i, *clocks.insert_args(d, "demo")) for i, d in enumerate(batch)]
        await bulk.store(conn, q, rows, outcome)
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM incidents ORDER BY id")]
    for incident_id in rng.sample(ids, k=len(ids) // 80):
        reason = rng.choice(EXCLUSION_REASONS)
        event = EventIn(type="excluded", reason=reason, note="closed by the duty analyst")
        await incidents.add_event(conn, q, policy, incident_id, event, "demo")
    for extend in extensions():
        await extend(conn, q, policy, now, rng)
    return outcome.accepted


def extensions() -> list[DemoExtension]:
    """Demo loaders of other features (surveys, ...), run after the incidents."""
    from certmon import surveys

    return [surveys.demo_responses]


def context(host: str, port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        q = app[appkeys.QUERIES]
        async with db.connection(app[appkeys.POOL], 600) as conn:
            stored = await load(conn, q, app[appkeys.POLICY], datetime.now(UTC))
            token = await create_token(conn, q, default_token_name("admin"), "admin", None)
        log.info("demo data ready", incidents=stored)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        fiscal_year = fiscal_year_of(datetime.now(UTC), app[appkeys.POLICY].tz)
        print(f"certmon demo: http://{shown}:{port}/api/v1/sla?period=FY{fiscal_year}", file=sys.stderr)
        print(f"admin token: {token}", flush=True)
        print(token, flush=True)
        yield

    return ctx
