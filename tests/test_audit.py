"""The audit trail: every write recorded with its actor and rows, kept append-only by the database, chained by hashes
that ``certmon audit verify`` recomputes, and read through GET /api/v1/audit and ``certmon audit``."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import pytest
import structlog.testing
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from certmon.core.audit import Actor
from certmon.jobs import audit_seal, scheduler
from certmon.jobs.runtime import Runtime
from certmon.store import audit, db
from certmon.store.db import Queries
from certmon.store.tokens import create_token
from certmon.web import appkeys
from tests.conftest import Api
from tests.console import NOW, visitor
from tests.notifying import ACCEPTED, ACK_LINK, ManualClock, create_incident, give_contacts, notify, smtp_server
from tests.test_cli import certmon, environment

DETECTED = "2021-08-02T09:00:00+07:00"
Q = Queries.load()
SEAL_PATIENCE_SECONDS = 60.0  # a writer in any database of the server holds sealing back until it ends


def incident(**fields: Any) -> dict[str, Any]:
    return {
        "agency": "MOF",
        "title": "C2 beacon",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": DETECTED,
        **fields,
    }


async def entries(api: Api, role: str = "auditor", limit: int = 200, **filters: str) -> list[dict[str, Any]]:
    """Every entry the filters select, newest first, read page by page."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {**filters, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        status, page = await api.call("GET", f"/api/v1/audit?{urlencode(params)}", role)
        assert status == 200, page
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


async def seal_all(conn: asyncpg.Connection) -> audit.Verification:
    """Seal until no entry is pending, then verify; transactions of other tests on the server may delay it a little."""
    deadline = time.monotonic() + SEAL_PATIENCE_SECONDS
    while True:
        result = await audit.verify(conn, Q)
        if result.pending == 0 or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def tamper(conn: asyncpg.Connection, table: str, statement: str, *args: Any) -> None:
    """What a superuser could do: switch the append-only trigger off, change the table, switch it on again."""
    await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
    try:
        await conn.execute(statement, *args)
    finally:
        await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


async def some_writes(api: Api) -> int:
    """An incident by the analyst, its notification time, and an agency by the admin; returns the incident id."""
    status, created = await api.call("POST", "/api/v1/incidents", "analyst", json=incident(external_id="w1"))
    assert status == 201, created
    status, _ = await api.call(
        "POST", f"/api/v1/incidents/{created['id']}/events", "analyst", json={"type": "notified", "at": DETECTED}
    )
    assert status == 201
    await api.agency("DOE", networks=["10.20.0.0/16"])
    return int(created["id"])


async def test_an_incident_and_its_milestone_are_recorded_with_the_caller_and_the_rows_before_and_after(
    api: Api,
) -> None:
    """A POST is the analyst's insert of the incident and its clocks; a milestone is the update of the incident, with
    notified_at empty before and set after, and the insert of the event."""
    ident = str(await some_writes(api))
    found = await entries(api, kind="incident", entity=ident)
    assert {(e["actor"], e["actor_role"]) for e in found} == {("token:test-analyst", "analyst")}
    by = {(e["table"], e["action"]): e for e in found}
    assert {
        ("incidents", "insert"),
        ("incident_clocks", "insert"),
        ("incidents", "update"),
        ("incident_events", "insert"),
        ("incident_clocks", "delete"),
    } <= set(by)
    inserted = by[("incidents", "insert")]
    assert inserted["before"] is None and inserted["after"][0]["title"] == "C2 beacon"
    assert (inserted["entity_ids"], inserted["row_count"]) == ([ident], 1)
    updated = by[("incidents", "update")]
    assert updated["before"][0]["notified_at"] is None
    assert updated["after"][0]["notified_at"] is not None
    event = by[("incident_events", "insert")]["after"][0]
    assert (event["type"], event["actor"]) == ("notified", "test-analyst")
    assert [e["id"] for e in found] == sorted((e["id"] for e in found), reverse=True), "newest first"
    networks = await entries(api, table="agency_networks", entity="DOE")
    assert [(e["actor"], e["after"][0]["network"]) for e in networks] == [("token:test-admin", "10.20.0.0/16")]


async def test_secrets_and_token_hashes_never_reach_the_trail(api: Api) -> None:
    """A webhook secret and a token's hash are recorded only as set; the new token itself never appears."""
    secret = "a-webhook-secret-long-enough"
    hook = {"url": "https://hooks.example/certmon", "secret": secret}
    await api.agency("DOE", webhook=hook)
    async with db.connection(api.app[appkeys.POOL], actor=Actor("cli:operator", "cli")) as conn:
        token = await create_token(conn, Q, "oversight", "auditor", None)
        everything = await conn.fetchval("SELECT string_agg(concat(before::text, after::text), '') FROM audit_entries")
        digest = await conn.fetchval("SELECT encode(token_hash, 'hex') FROM api_tokens WHERE name = 'oversight'")
    assert secret not in everything and token not in everything and digest not in everything
    [agency] = await entries(api, table="agencies", entity="DOE")
    assert agency["after"][0]["webhook_secret"] == "redacted"
    [made] = await entries(api, table="api_tokens", actor="cli:operator")
    assert made["after"][0]["name"] == "oversight" and made["after"][0]["token_hash"] == "redacted"
    assert (made["actor_role"], made["kind"]) == ("cli", "token")


async def test_a_bulk_upload_is_one_entry_per_table_not_one_per_incident(api: Api) -> None:
    """2,000 incidents in one NDJSON body: one insert entry for incidents and one for their clocks, all rows in it."""
    lines = [json.dumps(incident(external_id=f"bulk-{n}")) for n in range(2000)]
    status, result = await api.call(
        "POST", "/api/v1/incidents/bulk", "analyst", data="\n".join(lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )  # fmt: skip
    assert status == 200 and result["accepted"] == 2000, result
    found = await entries(api, actor="test-analyst", limit=10)
    assert sorted((e["table"], e["action"]) for e in found) == [
        ("incident_clocks", "insert"),
        ("incidents", "insert"),
    ]
    rows = {e["table"]: e for e in found}["incidents"]
    assert rows["row_count"] == 2000 and len(rows["after"]) == 2000 and len(rows["entity_ids"]) == 2000
    assert {r["external_id"] for r in rows["after"]} == {f"bulk-{n}" for n in range(2000)}


@pytest.mark.parametrize("table", ["audit_entries", "audit_chain"])
async def test_the_database_refuses_to_change_or_remove_audit_rows_even_for_a_superuser(
    api: Api, conn: asyncpg.Connection, table: str
) -> None:
    """UPDATE, DELETE and TRUNCATE of either audit table fail in the database itself, whoever asks."""
    await some_writes(api)
    await seal_all(conn)
    assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    column = "actor" if table == "audit_entries" else "hash"
    for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute(statement)
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") > 0


async def test_a_write_from_outside_certmon_is_recorded_under_the_database_user(conn: asyncpg.Connection) -> None:
    """psql's writes bypass the service but not the triggers: a TRUNCATE of clocks is recorded as db:<user>."""
    await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('MOF', 'Finance', 'government')")
    await conn.execute("TRUNCATE incident_clocks")
    rows = await conn.fetch("SELECT actor, action, table_name FROM audit_entries ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("db:postgres", "insert", "agencies"),
        ("db:postgres", "truncate", "incident_clocks"),
    ]


async def test_verify_passes_on_an_untouched_chain_and_names_an_altered_entry(
    api: Api, conn: asyncpg.Connection
) -> None:
    """Sealed entries verify; changing one entry's rows afterwards is found as that entry, by hash mismatch."""
    ident = await some_writes(api)
    result = await seal_all(conn)
    assert result.ok and result.pending == 0, result
    assert result.head is not None and result.length == await conn.fetchval("SELECT count(*) FROM audit_entries")
    victim = await conn.fetchval(
        "SELECT id FROM audit_entries WHERE table_name = 'incidents' AND action = 'update' AND $1 = ANY(entity_ids)",
        str(ident),
    )
    erase = "UPDATE audit_entries SET after = jsonb_set(after::jsonb, '{0,notified_at}', 'null')::json WHERE id = $1"
    await tamper(conn, "audit_entries", erase, victim)
    broken = await audit.verify(conn, Q)
    assert not broken.ok
    assert broken.problem is not None and f"entry {victim} " in broken.problem and "altered" in broken.problem


async def test_verify_names_a_removed_entry_and_a_removed_chain_position(api: Api, conn: asyncpg.Connection) -> None:
    """Deleting an entry leaves its chain position pointing at nothing; deleting a position leaves a gap."""
    await some_writes(api)
    assert (await seal_all(conn)).ok
    first, second = await conn.fetch("SELECT seq, entry_id FROM audit_chain ORDER BY seq LIMIT 2")
    await tamper(conn, "audit_entries", "DELETE FROM audit_entries WHERE id = $1", second["entry_id"])
    removed = await audit.verify(conn, Q)
    assert removed.problem == f"entry {second['entry_id']} (chain position {second['seq']}) was removed"
    await tamper(conn, "audit_chain", "DELETE FROM audit_chain WHERE seq = $1", first["seq"])
    gap = await audit.verify(conn, Q)
    assert gap.problem == f"chain position 1 is missing (the next one is {second['seq']})"


async def test_an_entry_slipped_in_behind_the_head_is_found(api: Api, conn: asyncpg.Connection) -> None:
    """An entry inserted with an old transaction id, so that the sealer would never take it, fails verification."""
    await some_writes(api)
    assert (await seal_all(conn)).ok
    await conn.execute(
        "INSERT INTO audit_entries (xid, actor, action, table_name, kind, entity_ids, row_count)"
        " VALUES ('1', 'forged', 'insert', 'incidents', 'incident', '{1}', 1)"
    )
    result = await audit.verify(conn, Q)
    assert result.problem is not None and "added behind it" in result.problem


async def test_a_rewritten_tail_is_found_against_an_anchored_head(api: Api, conn: asyncpg.Connection) -> None:
    """Removing the newest entries and their positions keeps the rest consistent; the logged head reveals it."""
    await some_writes(api)
    before = await seal_all(conn)
    assert before.ok and before.head is not None
    anchored = (before.head.seq, before.head.hash)
    assert (await audit.verify(conn, Q, anchored)).ok
    await tamper(conn, "audit_chain", "DELETE FROM audit_chain WHERE seq = $1", before.head.seq)
    await tamper(conn, "audit_entries", "DELETE FROM audit_entries WHERE id = $1", before.head.entry_id)
    assert (await audit.verify(conn, Q)).ok, "without an anchor the shorter chain is consistent"
    rewritten = await audit.verify(conn, Q, anchored)
    assert rewritten.problem is not None and "anchored head" in rewritten.problem


async def test_sealing_waits_for_a_running_writer_without_holding_up_other_writes(
    database_url: str, conn: asyncpg.Connection
) -> None:
    """A transaction still open keeps its entry, and every later one, out of the chain, while others write and commit
    freely; once it commits, both are sealed, the older transaction's first."""
    slow = await asyncpg.connect(database_url)
    try:
        transaction = slow.transaction()
        await transaction.start()
        await slow.execute("INSERT INTO agencies (code, name, sector) VALUES ('SLOW', 'slow', 'government')")
        await asyncio.wait_for(
            conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('FAST', 'fast', 'government')"), 5
        )
        held = await audit.verify(conn, Q)
        assert held.ok and held.length == 0 and held.pending == 1, "the open transaction's entry is not visible yet"
        await transaction.commit()
    finally:
        await slow.close()
    result = await seal_all(conn)
    assert result.ok and result.length == 2
    order = await conn.fetch(
        "SELECT e.entity_ids[1] AS code FROM audit_chain c JOIN audit_entries e ON e.id = c.entry_id ORDER BY c.seq"
    )
    assert [r["code"] for r in order] == ["SLOW", "FAST"]


async def test_the_sealing_job_seals_and_logs_the_head_and_jobs_write_as_themselves(api: Api) -> None:
    """A job run by the scheduler writes as system:<job id>; the sealing job chains the entries and logs the head."""
    runtime: Runtime = api.runtime(NOW)
    done = asyncio.get_running_loop().create_future()

    def install(runtime: Runtime, jobs: AsyncIOScheduler) -> None:
        async def job() -> None:
            async with db.connection(runtime.pool) as conn:
                await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ('JOB', 'job', 'government')")
            done.set_result(True)

        jobs.add_job(job, "date", id="probe")

    async with scheduler.running(runtime, [install]):
        await asyncio.wait_for(done, 10)
    [written] = await entries(api, table="agencies", entity="JOB")
    assert (written["actor"], written["actor_role"]) == ("system:probe", "system")
    deadline = time.monotonic() + SEAL_PATIENCE_SECONDS
    with structlog.testing.capture_logs() as logs:
        while (sealed := await audit_seal.seal(runtime)) is not None and sealed.count == 0:
            assert time.monotonic() < deadline, "nothing sealed"
            await asyncio.sleep(0.1)
    assert sealed is not None and sealed.head is not None
    logged = [line for line in logs if line["event"] == "audit chain sealed"]
    assert logged and logged[-1]["head"] == f"{sealed.head.seq}:{sealed.head.hash}"


async def test_audit_filters_and_keyset_pagination(api: Api, conn: asyncpg.Connection) -> None:
    """Each filter selects what it names; pages of two add up to the whole trail, with no entry twice."""
    ident = await some_writes(api)
    status, _ = await api.call("POST", f"/api/v1/incidents/{ident}/events", "agency", json={"type": "acknowledged"})
    assert status == 201
    everything = await entries(api)
    assert len(everything) >= 8
    paged = await entries(api, limit=2)
    assert [e["id"] for e in paged] == [e["id"] for e in everything]
    assert {e["actor"] for e in await entries(api, actor="test-agency-mof")} == {"token:test-agency-mof"}
    assert {e["actor"] for e in await entries(api, actor="token:test-admin")} == {"token:test-admin"}
    assert {e["table"] for e in await entries(api, table="agencies")} == {"agencies"}
    assert {e["kind"] for e in await entries(api, kind="agency")} == {"agency"}
    assert {e["action"] for e in await entries(api, action="update")} == {"update"}
    assert all(str(ident) in e["entity_ids"] for e in await entries(api, entity=str(ident)))
    middle = sorted(everything, key=lambda e: e["id"])[len(everything) // 2]
    since = await entries(api, since=middle["at"])
    until = await entries(api, until=middle["at"])
    assert {e["id"] for e in since} | {e["id"] for e in until} == {e["id"] for e in everything}
    assert not {e["id"] for e in since} & {e["id"] for e in until}
    sealed = await seal_all(conn)
    newest = (await entries(api, limit=1))[0]
    assert sealed.head is not None and (newest["chain_seq"], newest["chain_hash"]) == (
        sealed.head.seq,
        sealed.head.hash,
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=2021-08-01T00:00:00", "since"),
        ("until=yesterday", "until"),
        ("since=2021-08-02T00:00:00%2B07:00&until=2021-08-01T00:00:00%2B07:00", "until"),
        ("action=upsert", "action"),
        ("kind=people", "kind"),
        ("limit=0", "limit"),
        ("cursor=bm9wZQ", "cursor"),
        ("agency=MOF", "agency"),
    ],
)
async def test_bad_audit_parameters_get_422_naming_them(api: Api, query: str, field: str) -> None:
    """Times without an offset, unknown words, bad cursors and unknown parameters are refused, naming the field."""
    status, problem = await api.call("GET", f"/api/v1/audit?{query}", "admin")
    assert status == 422, problem
    assert problem["errors"][0]["field"] == field


async def test_only_admin_and_auditor_tokens_read_the_trail(api: Api) -> None:
    """The trail shows every agency's incidents and who did what: agency and analyst tokens get 403."""
    for role, expected in (("admin", 200), ("auditor", 200), ("analyst", 403), ("agency", 403)):
        status, body = await api.call("GET", "/api/v1/audit", role)
        assert status == expected, (role, body)
    async with api.client.get("/api/v1/audit") as response:
        assert response.status == 401


async def test_a_database_outage_during_an_audit_read_is_503_with_retry_after(make_api: Any, server_url: str) -> None:
    """While the database refuses connections, reading the trail answers 503 with Retry-After; then 200 again."""
    api: Api = await make_api(token_cache_seconds=60)
    assert (await api.call("GET", "/api/v1/audit"))[0] == 200
    admin = await asyncpg.connect(server_url)
    name = urlsplit(api.database_url).path.lstrip("/")
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        async with api.client.get("/api/v1/audit", headers=api.headers("auditor")) as response:
            body = await response.json(content_type=None)
            assert response.status == 503, body
            assert response.headers["Retry-After"] == "5"
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    assert (await api.call("GET", "/api/v1/audit"))[0] == 200


async def test_console_sign_in_and_sign_out_are_recorded_but_page_views_are_not(api: Api) -> None:
    """Signing in and out are the console user's insert and delete of a session; reading pages writes no entry."""
    async with visitor(api, "analyst") as browser:
        for _ in range(3):
            status, _, _ = await browser.get("/")
            assert status == 200
        status, _, _ = await browser.post("/logout", {})
        assert status == 303
    found = await entries(api, table="console_sessions")
    assert [(e["action"], e["actor"]) for e in reversed(found)] == [
        ("insert", "console:test-analyst"),
        ("delete", "console:test-analyst"),
    ]
    assert found[0]["before"][0]["id_hash"] == "redacted"


async def test_the_audit_operation_is_in_the_openapi_document(api: Api) -> None:
    """GET /api/v1/audit is declared with its parameters and its response model."""
    status, spec = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    operation = spec["paths"]["/api/v1/audit"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AuditPage")
    assert {p["name"] for p in operation["parameters"]} == {
        "actor", "table", "kind", "entity", "action", "since", "until", "limit", "cursor",
    }  # fmt: skip
    assert "AuditEntryOut" in spec["components"]["schemas"]


def test_the_audit_commands_list_entries_and_verify_the_chain(database_url: str) -> None:
    """``certmon audit`` shows the operator's token creation as theirs; ``verify`` passes, then names a tampered
    entry and exits 1."""
    env = environment(CERTMON_DATABASE_URL=database_url, COLUMNS="250")
    assert certmon("token", "create", "--role", "auditor", "--name", "oversight", env=env).returncode == 0
    assert certmon("token", "revoke", "oversight", env=env).returncode == 0
    listed = certmon("audit", "--table", "api_tokens", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "cli:" in listed.stdout and "api_tokens" in listed.stdout and "insert" in listed.stdout
    assert "revoked_at: None →" in listed.stdout, listed.stdout
    assert "2 entries" in listed.stdout
    assert "0 entries" in certmon("audit", "--actor", "nobody", env=env).stdout
    deadline = time.monotonic() + SEAL_PATIENCE_SECONDS
    while (verified := certmon("audit", "verify", env=env)).stdout.endswith(
        " pending\n"
    ) and " 0 pending" not in verified.stdout:
        assert time.monotonic() < deadline, verified.stdout
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit chain verified: 2 entries, head 2:")
    head = verified.stdout.split("head ")[1].split(",")[0]
    assert certmon("audit", "verify", "--expect-head", head, env=env).returncode == 0
    assert certmon("audit", "verify", "--expect-head", "2:xyz", env=env).returncode == 2

    async def alter() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await tamper(conn, "audit_entries", "UPDATE audit_entries SET actor = 'someone-else' WHERE id = 1")
        finally:
            await conn.close()

    asyncio.run(alter())
    broken = certmon("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "entry 1 (chain position 1) was altered" in broken.stderr


async def test_a_notification_and_its_acknowledgement_link_are_recorded_without_the_links_token(
    make_api: Any,
) -> None:
    """The analyst's e-mail notification records the send and the link (its hash redacted); the agency's click on the
    link records the acknowledgement as ack-link's."""
    clock = ManualClock(ACCEPTED)
    async with smtp_server() as inbox:
        api: Api = await make_api(clock=clock, smtp_url=f"smtp://127.0.0.1:{inbox.port}")
        await give_contacts(api)
        created = await create_incident(api)
        status, body = await notify(api, created["id"], "email")
        assert status == 201, body
        found = ACK_LINK.search(inbox.bodies()[0])
        assert found is not None
    clock.at = ACCEPTED + timedelta(minutes=10)
    async with api.client.post(found.group(1)) as response:
        assert response.status == 200
    ident = str(created["id"])
    by_table: dict[str, list[tuple[str, str]]] = {}
    for e in reversed(await entries(api, kind="incident", entity=ident)):
        by_table.setdefault(e["table"], []).append((e["action"], e["actor"]))
    assert ("insert", "token:test-analyst") in by_table["notifications"]
    assert by_table["ack_links"] == [("insert", "token:test-analyst"), ("update", "ack-link")]
    assert ("insert", "ack-link") in by_table["incident_events"]
    [link] = await entries(api, table="ack_links", action="insert")
    assert link["after"][0]["token_hash"] == "redacted"
    token = found.group(1).removeprefix("/ack/")
    async with db.connection(api.app[appkeys.POOL]) as conn:
        everything = await conn.fetchval("SELECT string_agg(concat(before::text, after::text), '') FROM audit_entries")
    assert token not in everything
