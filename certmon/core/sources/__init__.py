"""Alerts from sensors and monitoring systems (Suricata, Wazuh, Alertmanager) and historical CSV files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certmon.core.models import to_utc

OTHER = "other/undetermined"  # the RSIT type of an alert whose class says nothing more precise


def storable(text: str) -> str:
    """Sensor text as PostgreSQL can store it: U+0000 becomes U+FFFD, the replacement character.

    An alert is evidence and is kept whatever a sensor put in its strings; refusing it for one character would
    lose it, and passing the character on would fail the whole import.
    """
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, reduced to what grouping and the incident need."""

    key: bytes  # digest of the fields that identify the alert; equal alerts are imported once
    at: datetime
    addresses: tuple[str, ...]  # in the order they are tried against the agencies' networks
    signature: str  # stable rule identifier; alerts of one signature and agency group into one incident
    title: str
    severity: str
    category: str
    record: Any  # the alert as received; only the first alert of a group is described, so that is done lazily
    describe: Callable[[Any], str]

    def __post_init__(self) -> None:
        if "\x00" in self.signature or "\x00" in self.title:  # rare; an import builds millions of these
            object.__setattr__(self, "signature", storable(self.signature))
            object.__setattr__(self, "title", storable(self.title))

    @property
    def description(self) -> str:
        return storable(self.describe(self.record)[:20000])


class Rejected(Exception):
    """A record that is not a usable alert; ``reason`` is a short label for metrics, ``detail`` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Skipped(Exception):
    """A record that is valid but is no alert (an EVE flow or dns event, for example)."""


def alert_key(at: datetime, *parts: object) -> bytes:
    """16 bytes: the alert's time, then a digest of its identifying fields.

    Leading with the time keeps the ``ingested_alerts`` index growing at its right edge as a log is read in order,
    instead of touching a random page for every alert.
    """
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return key_prefix(at) + digest


def key_prefix(at: datetime) -> bytes:
    """The first 8 bytes of the keys of alerts at ``at``; keys of earlier alerts sort below it, byte by byte."""
    micros = int(at.timestamp() * 1_000_000) & 0xFFFF_FFFF_FFFF_FFFF
    return micros.to_bytes(8, "big")


def parse_time(raw: object, field: str) -> datetime:
    if not isinstance(raw, str):
        raise Rejected("invalid", f"{field}: is missing")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected("invalid", f"{field}: {raw!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise Rejected("invalid", f"{field}: {raw!r} carries no UTC offset")
    try:
        to_utc(value)
    except ValueError as exc:
        raise Rejected("invalid", f"{field}: {raw!r} {exc}") from None
    return value  # as the sensor wrote it: samples and reports show its own offset
