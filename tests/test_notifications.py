"""certmon notifies agencies itself, against real servers on loopback: an SMTP server and a webhook receiver.

The ``notified`` milestone is the moment the server accepted the notice; a refusal, silence or an unreachable server
records no milestone but a ``notification_failed`` event, and answers 502.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestServer

from certmon.core.notices import NoticeFacts, compose
from certmon.core.settings import Settings, SettingsError, SmtpServer
from certmon.core.taxonomy import TLP_LABELS
from certmon.web import appkeys
from tests.conftest import REPO, Api
from tests.notifying import (
    ACCEPTED,
    ACK_LINK,
    CONTACTS,
    DETECTED,
    SECRET,
    STARTED,
    Hook,
    ManualClock,
    closed_port,
    create_incident,
    give_contacts,
    local,
    make_certificates,
    notify,
    smtp_server,
    timeline,
    webhook_app,
)

MakeApi = Callable[..., Any]
AiohttpServer = Callable[..., Any]
PUBLIC = "https://certmon.cert.example.go.th"


def accept_at(clock: ManualClock) -> Callable[[], None]:
    """Move the service clock to ACCEPTED at the moment the server takes the notice."""

    def move() -> None:
        clock.at = ACCEPTED

    return move


async def webhook_receiver(aiohttp_server: AiohttpServer, hook: Hook) -> Hook:
    server: TestServer = await aiohttp_server(webhook_app(hook), host="127.0.0.1")
    hook.url = str(server.make_url("/hook"))
    return hook


def counted(api: Api, channel: str, outcome: str) -> float:
    value = api.app[appkeys.METRICS].registry.get_sample_value(
        "certmon_notifications_total", {"channel": channel, "outcome": outcome}
    )
    return float(value or 0)


async def test_an_email_arrives_with_its_link_and_notified_at_is_the_moment_the_server_accepted_it(
    make_api: MakeApi,
) -> None:
    """The message reaches the SMTP server with the link; notified_at is the clock read after the server's 250."""
    clock = ManualClock(STARTED)
    async with smtp_server() as inbox:
        inbox.on_data = accept_at(clock)
        api = await make_api(clock=clock, smtp_url=f"smtp://127.0.0.1:{inbox.port}", public_url=PUBLIC)
        await give_contacts(api)
        incident = await create_incident(api)
        status, sent = await notify(api, incident["id"], "email")
    assert status == 201, sent
    assert sent["status"] == "sent"
    assert sent["recipients"] == [c["email"] for c in CONTACTS]
    assert sent["started_at"] == local(STARTED)
    assert sent["finished_at"] == local(ACCEPTED)
    assert sent["response"] == "250 2.0.0 Ok: queued as TEST1"
    link_hours = api.app[appkeys.POLICY].acknowledgement_link_hours
    assert sent["ack_expires_at"] == local(STARTED + timedelta(hours=link_hours))
    assert "token" not in json.dumps(sent) and "/ack/" not in json.dumps(sent)

    [message] = inbox.messages
    assert message["Message-ID"] == sent["message_id"]
    assert message["From"] == "certmon@localhost"
    assert "soc@mof.example.go.th" in message["To"] and "ciso@mof.example.go.th" in message["To"]
    assert "TLP:AMBER" in message["Subject"] and f"#{incident['id']}" in message["Subject"]
    assert sorted(inbox.envelopes[0].rcpt_tos) == sorted(c["email"] for c in CONTACTS)
    [body] = inbox.bodies()
    link = ACK_LINK.search(body)
    assert link is not None and link.group(0).startswith(PUBLIC + "/ack/")
    for expected in ("C2 beacon from the payroll server", "malicious-code/c2-server", "high", "รับทราบ", "Acknowledge"):
        assert expected in body
    assert "10.10.4.7 calls out" in body  # TLP:AMBER: the description may go to the agency

    stored, events = await timeline(api, incident["id"])
    assert stored["notified_at"] == local(ACCEPTED)
    [event] = events
    assert event["type"] == "notified" and event["at"] == local(ACCEPTED)
    assert event["actor"] == "test-analyst"
    assert event["detail"]["reply"] == "250 2.0.0 Ok: queued as TEST1"
    assert event["detail"]["message_id"] == sent["message_id"]
    assert event["detail"]["notification"] == sent["id"]
    assert counted(api, "email", "sent") == 1


async def test_a_second_send_answers_the_first_without_a_second_mail_and_a_resend_sends_again(
    make_api: MakeApi,
) -> None:
    """Idempotent per incident and channel: 200, the same notification; resend: 201, a new mail, no new milestone."""
    clock = ManualClock(STARTED)
    async with smtp_server() as inbox:
        inbox.on_data = accept_at(clock)
        api = await make_api(clock=clock, smtp_url=f"smtp://127.0.0.1:{inbox.port}")
        await give_contacts(api)
        incident = await create_incident(api)
        _, first = await notify(api, incident["id"], "email")
        status, again = await notify(api, incident["id"], "email")
        assert status == 200
        assert again == first
        assert len(inbox.messages) == 1
        assert counted(api, "email", "duplicate") == 1

        later = ACCEPTED.replace(minute=40)
        inbox.on_data = lambda: setattr(clock, "at", later)
        status, resent = await notify(api, incident["id"], "email", resend=True)
    assert status == 201, resent
    assert resent["id"] != first["id"]
    assert len(inbox.messages) == 2
    assert resent["message_id"] != first["message_id"]
    [link1, link2] = [ACK_LINK.search(b) for b in inbox.bodies()]
    assert link1 is not None and link2 is not None and link1.group(1) != link2.group(1)
    stored, events = await timeline(api, incident["id"])
    assert stored["notified_at"] == local(ACCEPTED)  # the first acceptance stays the milestone
    assert [e["type"] for e in events] == ["notified", "notification_sent"]
    assert events[1]["at"] == local(later)
    assert events[1]["detail"]["message_id"] == resent["message_id"]


async def test_a_tlp_red_description_is_in_neither_the_mail_nor_the_webhook(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    """TLP:RED and TLP:AMBER+STRICT keep the description out of every notice; the notice says it was withheld."""
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET))
    async with smtp_server() as inbox:
        api = await make_api(clock=ManualClock(STARTED), smtp_url=f"smtp://127.0.0.1:{inbox.port}")
        await give_contacts(api, webhook={"url": hook.url, "secret": SECRET})
        for tlp in ("TLP:RED", "TLP:AMBER+STRICT"):
            secret_text = f"the attacker holds the {tlp} domain admin password"
            incident = await create_incident(api, tlp=tlp, description=secret_text)
            for channel in ("email", "webhook"):
                status, body = await notify(api, incident["id"], channel)
                assert status == 201, body
            mail = inbox.bodies()[-1]
            _, raw = hook.requests[-1]
            assert secret_text not in mail and "domain admin password" not in mail
            assert "domain admin password" not in raw.decode()
            assert tlp in mail and tlp in inbox.messages[-1]["Subject"]
            payload = json.loads(raw)
            assert payload["incident"]["description"] is None
            assert payload["incident"]["description_withheld"] is True


async def test_the_smtp_server_down_answers_502_records_no_milestone_and_puts_the_failure_on_the_timeline(
    make_api: MakeApi,
) -> None:
    api = await make_api(clock=ManualClock(STARTED), smtp_url=f"smtp://127.0.0.1:{closed_port()}")
    await give_contacts(api)
    incident = await create_incident(api)
    status, problem = await notify(api, incident["id"], "email")
    assert status == 502, problem
    assert problem["status"] == 502 and problem["title"] == "Bad gateway"
    assert "refused" in problem["detail"].lower() or "connect" in problem["detail"].lower()
    assert problem["notification"]["status"] == "failed"
    stored, events = await timeline(api, incident["id"])
    assert stored["notified_at"] is None
    [event] = events
    assert event["type"] == "notification_failed"
    assert event["milestone"] is None
    assert event["detail"]["error"] == problem["notification"]["response"]
    assert counted(api, "email", "failed") == 1
    # The failed send does not hold the channel: a later send is tried again.
    status, _ = await notify(api, incident["id"], "email")
    assert status == 502
    assert counted(api, "email", "failed") == 2


async def test_a_550_refusal_answers_502_with_the_servers_reply_on_the_timeline(make_api: MakeApi) -> None:
    async with smtp_server() as inbox:
        inbox.refuse_with = "550 5.7.1 Message rejected by policy"
        api = await make_api(clock=ManualClock(STARTED), smtp_url=f"smtp://127.0.0.1:{inbox.port}")
        await give_contacts(api)
        incident = await create_incident(api)
        status, problem = await notify(api, incident["id"], "email")
    assert status == 502, problem
    assert "550 5.7.1 Message rejected by policy" in problem["detail"]
    stored, [event] = await timeline(api, incident["id"])
    assert stored["notified_at"] is None
    assert event["type"] == "notification_failed"
    assert event["detail"]["code"] == 550
    assert event["detail"]["reply"] == "5.7.1 Message rejected by policy"
    assert event["detail"]["message_id"] == problem["notification"]["message_id"]


async def test_smtps_to_a_server_whose_certificate_no_trusted_authority_signed_fails(
    make_api: MakeApi, tmp_path: Path
) -> None:
    """smtps:// verifies the server's certificate against the system's store: a self-made CA is not in it."""
    certificates = make_certificates(tmp_path)
    async with smtp_server(implicit_tls=certificates.server) as inbox:
        api = await make_api(clock=ManualClock(STARTED), smtp_url=f"smtps://127.0.0.1:{inbox.port}")
        await give_contacts(api)
        incident = await create_incident(api)
        status, problem = await notify(api, incident["id"], "email")
    assert status == 502, problem
    assert "certificate" in problem["detail"].lower()
    assert inbox.messages == []
    stored, [event] = await timeline(api, incident["id"])
    assert stored["notified_at"] is None
    assert event["type"] == "notification_failed"


async def test_smtps_delivers_when_the_servers_ca_is_given_in_smtp_ca_file(make_api: MakeApi, tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    async with smtp_server(implicit_tls=certificates.server) as inbox:
        api = await make_api(
            clock=ManualClock(STARTED),
            smtp_url=f"smtps://127.0.0.1:{inbox.port}",
            smtp_ca_file=certificates.ca_file,
        )
        await give_contacts(api)
        incident = await create_incident(api)
        status, sent = await notify(api, incident["id"], "email")
    assert status == 201, sent
    assert len(inbox.messages) == 1


async def test_starttls_with_credentials_delivers(make_api: MakeApi, tmp_path: Path) -> None:
    """smtp+starttls:// upgrades before it logs in with the URL's user and (percent-encoded) password."""
    certificates = make_certificates(tmp_path)
    async with smtp_server(starttls=certificates.server, login=("certmon", "p@ss word")) as inbox:
        api = await make_api(
            clock=ManualClock(STARTED),
            smtp_url=f"smtp+starttls://certmon:p%40ss%20word@127.0.0.1:{inbox.port}",
            smtp_ca_file=certificates.ca_file,
        )
        await give_contacts(api)
        incident = await create_incident(api)
        status, sent = await notify(api, incident["id"], "email")
    assert status == 201, sent
    assert inbox.logins == ["certmon"]
    assert len(inbox.messages) == 1


async def test_a_webhook_is_signed_with_the_agencys_secret_and_its_2xx_stamps_notified_at(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    clock = ManualClock(STARTED)
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET, on_request=accept_at(clock)))
    api = await make_api(clock=clock, public_url=PUBLIC)
    await api.agency("DOH", name_th="กรมอนามัย", webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api, agency="DOH", tlp="TLP:GREEN")
    status, sent = await notify(api, incident["id"], "webhook", role="admin")
    assert status == 201, sent
    [(headers, raw)] = hook.requests
    assert hook.signature_ok(headers, raw)
    assert headers["X-Certmon-Delivery"] == sent["message_id"]
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(raw)
    assert payload["incident"]["id"] == incident["id"]
    assert payload["incident"]["description"] == "10.10.4.7 calls out to 203.0.113.9 every 60 s"
    assert payload["agency"] == {"code": "DOH", "name": "Agency DOH", "name_th": "กรมอนามัย"}
    assert payload["asks"] == ["acknowledge", "contain", "report"]
    assert payload["acknowledge"]["url"].startswith(PUBLIC + "/ack/")
    assert "กรมอนามัย" in payload["text"]["th"] and "Acknowledge" in payload["text"]["en"]
    assert sent["recipients"] == [hook.url]
    assert sent["response"] == 'HTTP 200: {"received": true}'
    stored, [event] = await timeline(api, incident["id"])
    assert stored["notified_at"] == local(ACCEPTED)
    assert event["type"] == "notified"
    assert event["detail"]["status"] == 200
    assert event["detail"]["body"] == '{"received": true}'
    assert counted(api, "webhook", "sent") == 1


async def test_a_webhook_answering_500_fails_with_its_status_and_body_kept(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET, status=500, answer="database is down " * 200))
    api = await make_api(clock=ManualClock(STARTED))
    await give_contacts(api, webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api)
    status, problem = await notify(api, incident["id"], "webhook")
    assert status == 502, problem
    assert problem["detail"].startswith("the webhook notification was not accepted: HTTP 500: database is down")
    stored, [event] = await timeline(api, incident["id"])
    assert stored["notified_at"] is None
    assert event["type"] == "notification_failed"
    assert event["detail"]["status"] == 500
    assert len(event["detail"]["body"]) <= 500  # a bounded excerpt, not the whole answer
    assert counted(api, "webhook", "failed") == 1


async def test_a_webhook_that_does_not_answer_within_the_timeout_fails(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET, hold=asyncio.Event()))
    api = await make_api(clock=ManualClock(STARTED), notify_timeout_seconds=0.3)
    await give_contacts(api, webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api)
    try:
        status, problem = await notify(api, incident["id"], "webhook")
    finally:
        assert hook.hold is not None
        hook.hold.set()
    assert status == 502, problem
    assert "no answer from the webhook within 0.3 s" in problem["detail"]
    stored, [event] = await timeline(api, incident["id"])
    assert stored["notified_at"] is None
    assert event["type"] == "notification_failed"


async def test_a_send_in_progress_makes_a_concurrent_one_409_and_a_later_one_200(
    make_api: MakeApi, aiohttp_server: AiohttpServer
) -> None:
    """Only one send per incident and channel is in flight; once it is sent, a repeat answers with it."""
    release = asyncio.Event()
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET, hold=release))
    api = await make_api(clock=ManualClock(STARTED))
    await give_contacts(api, webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api)
    first = asyncio.create_task(notify(api, incident["id"], "webhook"))
    await hook.arrived.wait()
    status, problem = await notify(api, incident["id"], "webhook")
    assert status == 409, problem
    release.set()
    status, sent = await first
    assert status == 201, sent
    status, again = await notify(api, incident["id"], "webhook")
    assert (status, again["id"]) == (200, sent["id"])
    assert len(hook.requests) == 1
    assert counted(api, "webhook", "duplicate") == 2


async def test_an_agency_with_nobody_to_reach_on_the_channel_is_a_422_naming_channel(make_api: MakeApi) -> None:
    api = await make_api(clock=ManualClock(STARTED), smtp_url=f"smtp://127.0.0.1:{closed_port()}")
    incident = await create_incident(api)
    for channel in ("email", "webhook"):
        status, problem = await notify(api, incident["id"], channel)
        assert status == 422, problem
        assert problem["errors"][0]["field"] == "channel"
        assert "MOF" in problem["detail"]
    _, events = await timeline(api, incident["id"])
    assert events == []


async def test_email_without_an_smtp_server_configured_is_a_422_naming_channel(make_api: MakeApi) -> None:
    api = await make_api(clock=ManualClock(STARTED))
    await give_contacts(api)
    incident = await create_incident(api)
    status, problem = await notify(api, incident["id"], "email")
    assert status == 422
    assert problem["errors"][0]["field"] == "channel"
    assert "CERTMON_SMTP_URL" in problem["detail"]


async def test_only_admins_and_analysts_notify_and_an_unknown_incident_is_404(make_api: MakeApi) -> None:
    api = await make_api(clock=ManualClock(STARTED))
    incident = await create_incident(api)
    for role in ("auditor", "agency"):
        status, _ = await notify(api, incident["id"], "webhook", role=role)
        assert status == 403
    status, _ = await notify(api, 987654, "webhook")
    assert status == 404
    status, problem = await notify(api, incident["id"], "fax")
    assert status == 422 and problem["errors"][0]["field"] == "channel"


async def test_the_openapi_document_lists_the_notifications_operation(api: Api) -> None:
    status, spec = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    operation = spec["paths"]["/api/v1/incidents/{id}/notifications"]["post"]
    assert set(operation["responses"]) >= {"200", "201", "409", "422", "502"}
    assert "NotificationOut" in spec["components"]["schemas"]


async def test_the_notify_command_sends_as_the_api_does(
    make_api: MakeApi, aiohttp_server: AiohttpServer, settings: Settings
) -> None:
    """``certmon notify ID --channel webhook`` sends once, then reports the earlier send unless --resend."""
    hook = await webhook_receiver(aiohttp_server, Hook(SECRET))
    api = await make_api()
    await give_contacts(api, webhook={"url": hook.url, "secret": SECRET})
    incident = await create_incident(api)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CERTMON_")}
    env.update(CERTMON_DATABASE_URL=api.database_url, CERTMON_DATA_DIR=str(settings.data_dir))

    async def certmon(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "certmon", *args, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await certmon("notify", str(incident["id"]), "--channel", "webhook")
    assert code == 0, err
    assert "sent" in out and hook.url in out
    code, out, err = await certmon("notify", str(incident["id"]), "--channel", "webhook")
    assert code == 0, err
    assert "was sent before" in out
    assert len(hook.requests) == 1
    code, out, err = await certmon("notify", str(incident["id"]), "--channel", "webhook", "--resend")
    assert code == 0, err
    assert len(hook.requests) == 2
    stored, events = await timeline(api, incident["id"])
    assert stored["notified_at"] is not None
    assert [e["type"] for e in events] == ["notified", "notification_sent"]
    assert {e["actor"] for e in events} == {"cli"}
    hook.status = 503
    code, out, err = await certmon("notify", str(incident["id"]), "--channel", "webhook", "--resend")
    assert code == 1
    assert "HTTP 503" in err


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("http://mail.example.go.th", "must start with smtp://"),
        ("smtp://", "names no host"),
        ("smtp://user:hunter2hunter2@mail.example.go.th:99999", "Port out of range"),
        ("smtps://user:hunter2hunter2@mail.example.go.th/inbox", "must be only scheme"),
    ],
)
def test_a_bad_smtp_url_stops_start_up_naming_the_variable_but_not_the_password(raw: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"CERTMON_SMTP_URL": raw})
    assert str(caught.value).startswith("CERTMON_SMTP_URL=")
    assert reason in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_smtp_urls_give_their_scheme_default_ports_and_percent_decoded_credentials() -> None:
    settings = Settings.from_env(
        {"CERTMON_SMTP_URL": "smtp+starttls://certmon:p%40ss@mail.example.go.th", "CERTMON_PUBLIC_URL": PUBLIC + "/"}
    )
    server = settings.smtp_server
    assert server is not None
    assert (server.host, server.port, server.username, server.password) == (
        "mail.example.go.th",
        587,
        "certmon",
        "p@ss",
    )
    assert server.starttls and not server.implicit_tls
    assert "p@ss" not in repr(settings) and "p%40ss" not in repr(settings)
    assert settings.effective_public_url == PUBLIC
    assert Settings(host="10.0.0.5", port=9000).effective_public_url == "http://10.0.0.5:9000"
    assert Settings.from_env({"CERTMON_SMTP_URL": "smtps://mail.example.go.th"}).smtp_server == SmtpServer(
        "smtps", "mail.example.go.th", 465
    )
    for name, raw in (("SMTP_FROM", "not an address"), ("PUBLIC_URL", "ftp://x"), ("NOTIFY_TIMEOUT_SECONDS", "0")):
        with pytest.raises(SettingsError, match=f"^CERTMON_{name}="):
            Settings.from_env({f"CERTMON_{name}": raw})


@pytest.mark.parametrize("tlp", [*TLP_LABELS, None])
def test_a_notice_carries_the_description_unless_tlp_forbids_it(tlp: str | None) -> None:
    facts = NoticeFacts(
        notification_id=3,
        incident_id=9,
        title="Phishing site imitating the revenue department",
        severity="critical",
        category="fraud/phishing",
        tlp=tlp,
        description="credential form posts to 198.51.100.7",
        detected_at=DETECTED,
        agency_code="RD",
        agency_name="The Revenue Department",
        agency_name_th="กรมสรรพากร",
        ack_url=PUBLIC + "/ack/" + "t" * 43,
        ack_expires_at=DETECTED + timedelta(days=7),
    )
    notice = compose(facts, ZoneInfo("Asia/Bangkok"))
    withheld = tlp in ("TLP:RED", "TLP:AMBER+STRICT")
    assert ("198.51.100.7" in notice.text) is not withheld
    assert ("198.51.100.7" in json.dumps(notice.payload)) is not withheld
    assert notice.payload["incident"]["description_withheld"] is withheld
    assert "กรมสรรพากร" in notice.text and "The Revenue Department" in notice.text
    assert "วิกฤต" in notice.text and "Fraud: Phishing" in notice.text
    assert notice.text.count(facts.ack_url) == 2  # once in Thai, once in English
    assert "2025-06-02 09:00 (Asia/Bangkok)" in notice.text
    assert (tlp or "") in notice.subject and "#9" in notice.subject
