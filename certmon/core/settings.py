"""Service settings, read once from ``CERTMON_*`` environment variables."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from certmon.core.words import LANGS, Lang

T = TypeVar("T")


class SettingsError(ValueError):
    """A ``CERTMON_*`` variable holds a value certmon cannot use; the message names it."""


SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}  # scheme: its port when the URL gives none


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where notification e-mail goes: ``smtp://`` in the clear, ``smtp+starttls://`` upgraded, ``smtps://`` TLS."""

    scheme: str
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def implicit_tls(self) -> bool:
        return self.scheme == "smtps"

    @property
    def starttls(self) -> bool:
        return self.scheme == "smtp+starttls"


def parse_smtp_url(raw: str) -> SmtpServer:
    """``smtp[s|+starttls]://[user:password@]host[:port]``; a ValueError says what is wrong, never the password."""
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:  # urlsplit's messages never quote the URL
        raise ValueError(f"is not an SMTP URL ({exc}): write smtp://host:port, smtps://host:port ...") from None
    if parts.scheme not in SMTP_SCHEMES:
        raise ValueError(f"must start with {', '.join(f'{s}://' for s in SMTP_SCHEMES)}")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be only scheme, optional user:password@, host and port")
    username = None if parts.username is None else unquote(parts.username)
    password = None if parts.password is None else unquote(parts.password)
    return SmtpServer(parts.scheme, parts.hostname, port or SMTP_SCHEMES[parts.scheme], username, password)


def _redacted_url(raw: str) -> str:
    """The URL as an error message may show it: without its password."""
    try:
        parts = urlsplit(raw)
        if parts.password is None:
            return raw
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
    except ValueError:
        return "<unparsable URL>"


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/certmon``, else ``~/.local/share/certmon``: one place per user, whatever the directory a
    command runs in, so that serve, demo, token, migrate and ingest all reach the same embedded database."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG rule: a relative path there is invalid and ignored
        return Path(xdg) / "certmon"
    home = env.get("HOME", "")
    return (Path(home) if home else Path.home()) / ".local" / "share" / "certmon"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    policy_path: Path | None = None
    log_format: str = "auto"  # auto: console on a TTY, JSON otherwise
    log_level: str = "info"
    pool_min: int = 1
    pool_max: int = 10
    db_timeout_seconds: float = 5.0  # a query slower than this is treated as an outage, not a hang
    retry_after_seconds: int = 5  # told to clients while the database is unreachable
    token_cache_seconds: float = 2.0  # a revoked token stops working within this many seconds
    parse_workers: int = 2  # processes validating bulk bodies off the event loop; 0 validates in the loop
    metrics_refresh_seconds: float = 15.0  # Prometheus scrapes every 15 s by default
    sweep_seconds: float = 60.0
    audit_seal_seconds: float = 5.0  # how stale the audit chain's head may be; sealing a round costs one query
    rollup_fold_seconds: float = 5.0  # how many deltas a figure adds: a few seconds' writes
    scheduler_enabled: bool = True
    export_dir: Path | None = None
    export_hour: int = 1  # Bangkok hour on the 1st of the month when last month's export runs
    export_timeout_seconds: float = 600.0  # one statement of an export, which runs on a connection of its own
    report_lang: Lang = "th"  # report.pdf and workbook words of monthly exports: th (the oversight's) or en
    signing_key_path: Path | None = None
    ingest_mapping: Path | None = None  # TOML: alert severities, categories, labels, grouping window
    smtp_url: str | None = field(default=None, repr=False)  # may carry a password
    smtp_from: str = "certmon@localhost"
    smtp_ca_file: Path | None = None  # PEM bundle trusted for the SMTP server's certificate instead of the system's
    notify_timeout_seconds: float = 10.0  # each step of a send: connecting, every SMTP command, a webhook's answer
    public_url: str | None = None  # where agencies reach certmon's pages (acknowledgement links)
    session_idle_minutes: float = 30.0  # a console session left unused this long ends
    session_max_hours: float = 12.0  # every console session ends this long after sign-in, however busy
    trust_proxy: bool = False  # believe X-Forwarded-Proto: only behind a proxy that sets it itself
    console_refresh_seconds: float = 10.0  # how often the queue page asks for changes; at most 15
    idempotency_key_hours: float = 24.0  # how long the first answer to an Idempotency-Key is replayed
    nats_url: str = field(default="nats://127.0.0.1:4222", repr=False)  # may carry a token or password
    nats_stream: str = "CERTMON"
    nats_subjects: str = "certmon"  # the stream holds <subjects>.>; sensors publish to <subjects>.incidents ...
    nats_consumer: str = "certmon"  # the durable consumer every `certmon consume` replica shares
    nats_ack_wait_seconds: float = 30.0  # a message unacknowledged this long goes to another replica
    consume_batch: int = 500  # messages fetched, stored in one transaction, then acknowledged
    consume_port: int = 9108  # `certmon consume` answers /metrics and /healthz here (on CERTMON_HOST)
    auth_failures_per_minute: int = 20  # wrong tokens one client address may send before it is answered 429
    token_requests_per_minute: int = 0  # requests one token may make; 0: no limit
    trusted_proxies: tuple[str, ...] = ()  # networks whose X-Forwarded-For names the client address
    metrics_public: bool = False  # /metrics without a token
    header_timeout_seconds: float = 10.0  # a request's line and headers must arrive within this
    body_timeout_seconds: float = 60.0  # a request's body must arrive within this (a streamed one: no pause longer)
    shutdown_grace_seconds: float = 30.0  # requests in progress get this long to finish after SIGTERM
    recompute_batch: int = 1000  # incidents recomputed in one transaction after a policy change

    @property
    def effective_signing_key_path(self) -> Path:
        return self.signing_key_path or self.data_dir / "export-signing-key.pem"

    @property
    def smtp_server(self) -> SmtpServer | None:
        return None if self.smtp_url is None else parse_smtp_url(self.smtp_url)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, convert: Callable[[str], T], default: T) -> T:
            raw = env.get(f"CERTMON_{name}")
            if raw is None or raw == "":
                return default
            try:
                return convert(raw)
            except ValueError as exc:
                raise SettingsError(f"CERTMON_{name}={raw!r}: {exc}") from None

        def choice(*allowed: str) -> Callable[[str], str]:
            def convert(raw: str) -> str:
                value = raw.strip().lower()
                if value not in allowed:
                    raise ValueError(f"must be one of {', '.join(allowed)}")
                return value

            return convert

        def positive(convert: Callable[[str], T]) -> Callable[[str], T]:
            def check(raw: str) -> T:
                value = convert(raw)
                if value <= 0:  # type: ignore[operator]
                    raise ValueError("must be greater than zero")
                return value

            return check

        def non_negative(convert: Callable[[str], T]) -> Callable[[str], T]:
            def check(raw: str) -> T:
                value = convert(raw)
                if value < 0:  # type: ignore[operator]
                    raise ValueError("must not be negative")
                return value

            return check

        def port(raw: str) -> int:
            value = int(raw)
            if not 0 <= value <= 65535:
                raise ValueError("must be a TCP port, 0-65535")
            return value

        def boolean(raw: str) -> bool:
            value = raw.strip().lower()
            if value in {"1", "true", "yes", "on"}:
                return True
            if value in {"0", "false", "no", "off"}:
                return False
            raise ValueError("must be true or false")

        def url(raw: str) -> str:
            if not raw.startswith(("postgresql://", "postgres://")):
                raise ValueError("must be a postgresql:// URL")
            return raw

        def language(raw: str) -> Lang:
            return "en" if choice(*LANGS)(raw) == "en" else "th"

        def hour(raw: str) -> int:
            value = int(raw)
            if not 0 <= value <= 23:
                raise ValueError("must be an hour, 0-23")
            return value

        def existing_file(raw: str) -> Path:
            path = Path(raw)
            if not path.is_file():
                raise ValueError("no such file")
            return path

        def address(raw: str) -> str:
            value = raw.strip()
            local, at, domain = value.rpartition("@")
            if not at or not local or not domain or any(c.isspace() or c in '<>,;"' for c in value):
                raise ValueError("must be one bare e-mail address, such as certmon@cert.example.go.th")
            return value

        def web_url(raw: str) -> str:
            try:
                parts = urlsplit(raw)
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http:// or https:// URL, such as https://certmon.cert.example.go.th")
            if parts.query or parts.fragment:
                raise ValueError("must not carry a query or fragment")
            return raw.rstrip("/")

        def refresh(raw: str) -> float:
            # The queue must show a change within 30 s: a poll every 15 s at most leaves room for a slow answer.
            value = float(raw)
            if not 0 < value <= 15:
                raise ValueError("must be more than 0 and at most 15 seconds")
            return value

        def nats_url(raw: str) -> str:
            if not raw.startswith(("nats://", "tls://")):
                raise ValueError("must be a nats:// or tls:// URL")
            return raw

        def nats_name(raw: str) -> str:
            # JetStream names and subject tokens: no dots, wildcards or spaces
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", raw):
                raise ValueError("must be 1-64 letters, digits, _ or -")
            return raw

        def batch(raw: str) -> int:
            value = int(raw)
            if not 1 <= value <= 1000:
                raise ValueError("must be 1-1000")
            return value

        def networks(raw: str) -> tuple[str, ...]:
            found = []
            for part in (p.strip() for p in raw.split(",")):
                if part:
                    try:
                        found.append(str(ipaddress.ip_network(part, strict=False)))
                    except ValueError:
                        raise ValueError(f"{part!r} is not an IP address or network, such as 10.0.0.0/8") from None
            return tuple(found)

        pool_max = get("DB_POOL_MAX", positive(int), 10)
        smtp = env.get("CERTMON_SMTP_URL") or None
        if smtp is not None:
            try:  # not through get(): its message would quote the password
                parse_smtp_url(smtp)
            except ValueError as exc:
                raise SettingsError(f"CERTMON_SMTP_URL={_redacted_url(smtp)!r}: {exc}") from None
        return cls(
            database_url=get("DATABASE_URL", url, None),
            # Made absolute here, so that logs name it in full and a later chdir cannot move it.
            data_dir=get("DATA_DIR", lambda raw: Path(raw).expanduser().absolute(), default_data_dir(env)),
            host=get("HOST", str, "127.0.0.1"),
            port=get("PORT", port, 8080),
            policy_path=get("POLICY", existing_file, None),
            log_format=get("LOG_FORMAT", choice("auto", "json", "console"), "auto"),
            log_level=get("LOG_LEVEL", choice("debug", "info", "warning", "error"), "info"),
            pool_min=min(get("DB_POOL_MIN", positive(int), 1), pool_max),
            pool_max=pool_max,
            db_timeout_seconds=get("DB_TIMEOUT_SECONDS", positive(float), 5.0),
            retry_after_seconds=get("RETRY_AFTER_SECONDS", positive(int), 5),
            token_cache_seconds=get("TOKEN_CACHE_SECONDS", non_negative(float), 2.0),
            parse_workers=get("PARSE_WORKERS", non_negative(int), 2),
            metrics_refresh_seconds=get("METRICS_REFRESH_SECONDS", positive(float), 15.0),
            sweep_seconds=get("SWEEP_SECONDS", positive(float), 60.0),
            audit_seal_seconds=get("AUDIT_SEAL_SECONDS", positive(float), 5.0),
            rollup_fold_seconds=get("ROLLUP_FOLD_SECONDS", positive(float), 5.0),
            scheduler_enabled=get("SCHEDULER", boolean, True),
            export_dir=get("EXPORT_DIR", Path, None),
            export_hour=get("EXPORT_HOUR", hour, 1),
            export_timeout_seconds=get("EXPORT_TIMEOUT_SECONDS", positive(float), 600.0),
            report_lang=get("REPORT_LANG", language, "th"),
            signing_key_path=get("SIGNING_KEY", Path, None),
            ingest_mapping=get("INGEST_MAPPING", existing_file, None),
            smtp_url=smtp,
            smtp_from=get("SMTP_FROM", address, "certmon@localhost"),
            smtp_ca_file=get("SMTP_CA_FILE", existing_file, None),
            notify_timeout_seconds=get("NOTIFY_TIMEOUT_SECONDS", positive(float), 10.0),
            public_url=get("PUBLIC_URL", web_url, None),
            session_idle_minutes=get("SESSION_IDLE_MINUTES", positive(float), 30.0),
            session_max_hours=get("SESSION_MAX_HOURS", positive(float), 12.0),
            trust_proxy=get("TRUST_PROXY", boolean, False),
            console_refresh_seconds=get("CONSOLE_REFRESH_SECONDS", refresh, 10.0),
            idempotency_key_hours=get("IDEMPOTENCY_KEY_HOURS", positive(float), 24.0),
            nats_url=get("NATS_URL", nats_url, "nats://127.0.0.1:4222"),
            nats_stream=get("NATS_STREAM", nats_name, "CERTMON"),
            nats_subjects=get("NATS_SUBJECTS", nats_name, "certmon"),
            nats_consumer=get("NATS_CONSUMER", nats_name, "certmon"),
            nats_ack_wait_seconds=get("NATS_ACK_WAIT_SECONDS", positive(float), 30.0),
            consume_batch=get("CONSUME_BATCH", batch, 500),
            consume_port=get("CONSUME_PORT", port, 9108),
            auth_failures_per_minute=get("AUTH_FAILURES_PER_MINUTE", positive(int), 20),
            token_requests_per_minute=get("TOKEN_REQUESTS_PER_MINUTE", non_negative(int), 0),
            trusted_proxies=get("TRUSTED_PROXIES", networks, ()),
            metrics_public=get("METRICS_PUBLIC", boolean, False),
            header_timeout_seconds=get("HEADER_TIMEOUT_SECONDS", positive(float), 10.0),
            body_timeout_seconds=get("BODY_TIMEOUT_SECONDS", positive(float), 60.0),
            shutdown_grace_seconds=get("SHUTDOWN_GRACE_SECONDS", positive(float), 30.0),
            recompute_batch=get("RECOMPUTE_BATCH", positive(int), 1000),
        )
