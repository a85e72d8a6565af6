"""What the notification tests share: real servers on loopback for notifications to reach (an SMTP server with
aiosmtpd, a webhook receiver with aiohttp), the certificates they present, a clock moved by hand, and an incident of
an agency that has someone to notify."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACK_LINK = re.compile(r"https?://[^\s/]+(?::\d+)?(/ack/[A-Za-z0-9_-]{43})")


class ManualClock:
    """The service's clock, stopped at an instant the test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Inbox:
    """What the SMTP server received, and how it is to answer the next message."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    refuse_with: str | None = None  # an SMTP reply to DATA, such as "550 5.7.1 refused"
    hold: asyncio.Event | None = None  # DATA is answered only once it is set
    on_data: Callable[[], None] | None = None  # runs as the server accepts, before it answers

    def bodies(self) -> list[str]:
        return [str(m.get_content()) for m in self.messages]


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.inbox.hold is not None:
            await self.inbox.hold.wait()
        if self.inbox.refuse_with is not None:
            return self.inbox.refuse_with
        if self.inbox.on_data is not None:
            self.inbox.on_data()
        self.inbox.envelopes.append(envelope)
        assert isinstance(envelope.content, bytes)
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.inbox.messages.append(message)
        return "250 2.0.0 Ok: queued as TEST1"


@contextlib.asynccontextmanager
async def smtp_server(
    *,
    implicit_tls: ssl.SSLContext | None = None,
    starttls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> AsyncIterator[Inbox]:
    """An SMTP server on 127.0.0.1 and a free port, in this event loop: plain, smtps (implicit_tls) or STARTTLS."""
    inbox = Inbox()

    def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and login is not None
            and (data.login, data.password) == tuple(part.encode() for part in login)
        )
        if ok:
            inbox.logins.append(data.login.decode())
        return AuthResult(success=ok)

    def protocol() -> SMTP:
        return SMTP(
            _Handler(inbox),
            hostname="localhost",
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=authenticate if login else None,
            auth_required=login is not None,
            auth_require_tls=True,
        )

    server = await asyncio.get_running_loop().create_server(protocol, "127.0.0.1", 0, ssl=implicit_tls)
    inbox.port = server.sockets[0].getsockname()[1]
    try:
        yield inbox
    finally:
        if inbox.hold is not None:
            inbox.hold.set()
        server.close()
        await server.wait_closed()


def closed_port() -> int:
    """A loopback port that nothing listens on: connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@dataclass
class Hook:
    """What the webhook receiver got, and how it is to answer."""

    secret: str
    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    answer: str = '{"received": true}'
    hold: asyncio.Event | None = None  # the answer waits until it is set
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set when a request has come in
    on_request: Callable[[], None] | None = None

    def signature_ok(self, headers: dict[str, str], body: bytes) -> bool:
        expected = "sha256=" + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("X-Certmon-Signature", ""))


def webhook_app(hook: Hook) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        hook.requests.append((dict(request.headers), body))
        hook.arrived.set()
        if hook.hold is not None:
            await hook.hold.wait()
        if hook.on_request is not None:
            hook.on_request()
        if not hook.signature_ok(dict(request.headers), body):
            return web.Response(status=401, text="bad signature")
        return web.Response(status=hook.status, text=hook.answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook", receive)
    return app


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # the authority that signed the server's certificate, as a client would trust it
    server: ssl.SSLContext  # the server's side: its certificate for 127.0.0.1 and localhost, and its key


def make_certificates(directory: Path, now: datetime | None = None) -> Certificates:
    """A private CA and a server certificate it signed for 127.0.0.1, made here; no system store trusts them."""
    start = (now or datetime(2020, 1, 1, tzinfo=UTC)) - timedelta(days=1)
    end = start + timedelta(days=365 * 30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certmon test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file = directory / "server.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(chain, key_file)
    return Certificates(ca_file, server)


# Times of the notification tests: the incident is detected at 09:00 Bangkok time, the send starts at 09:20 and the
# mail server accepts it at 09:25; all long past, so that no check of "not in the future" depends on the wall clock.
DETECTED = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)


def local(value: datetime) -> str:
    """An instant as answers write it: with the policy's offset, Bangkok time."""
    return value.astimezone(ZoneInfo("Asia/Bangkok")).isoformat()


STARTED = DETECTED + timedelta(minutes=20)
ACCEPTED = DETECTED + timedelta(minutes=25)
SECRET = "s3cret-webhook-key-0123456789"
CONTACTS = [
    {"name": "MOF SOC", "email": "soc@mof.example.go.th"},
    {"name": "CISO, MOF", "email": "ciso@mof.example.go.th"},
]


async def give_contacts(api: Any, code: str = "MOF", **fields: Any) -> dict[str, Any]:
    body = {"contacts": CONTACTS, **fields}
    status, agency = await api.call("PATCH", f"/api/v1/agencies/{code}", json=body)
    assert status == 200, agency
    return dict(agency)


async def create_incident(api: Any, agency: str = "MOF", **fields: Any) -> dict[str, Any]:
    body = {
        "agency": agency,
        "title": "C2 beacon from the payroll server",
        "severity": "high",
        "category": "malicious-code/c2-server",
        "detected_at": DETECTED.isoformat(),
        "tlp": "TLP:AMBER",
        "description": "10.10.4.7 calls out to 203.0.113.9 every 60 s",
        **fields,
    }
    status, incident = await api.call("POST", "/api/v1/incidents", "analyst", json=body)
    assert status == 201, incident
    return dict(incident)


async def notify(api: Any, incident_id: int, channel: str, role: str = "analyst", **fields: Any) -> tuple[int, Any]:
    result: tuple[int, Any] = await api.call(
        "POST", f"/api/v1/incidents/{incident_id}/notifications", role, json={"channel": channel, **fields}
    )
    return result


async def timeline(api: Any, incident_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    status, incident = await api.call("GET", f"/api/v1/incidents/{incident_id}", "auditor")
    assert status == 200, incident
    return incident, [e for e in incident["timeline"] if e["id"] is not None]
