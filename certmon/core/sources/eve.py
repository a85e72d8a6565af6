"""Suricata EVE alerts (``event_type: alert``), as the eve-log output writes them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from certmon.core.sources import OTHER, Alert, Rejected, Skipped, alert_key, parse_time
from certmon.core.sources.mapping import EveMapping

SOURCE = "suricata"
MAX_REMEMBERED = 100_000  # classifications kept per import


class Classes:
    """The mapping's answers for the signatures, classes and severities a sensor uses, each worked out once.

    A signature rule decides first; then alert.category; then the signature's rule family (its first words).
    """

    def __init__(self, mapping: EveMapping) -> None:
        self._rules = [(re.compile(r.pattern, re.IGNORECASE), r.category, r.severity) for r in mapping.signatures]
        self._categories = dict(mapping.categories)
        self._families = sorted(mapping.families.items(), key=lambda item: -len(item[0]))
        self._severities = dict(mapping.severities)
        self._default = mapping.default_severity
        self._seen: dict[tuple[str, object, object], tuple[str, str]] = {}

    def classify(self, signature: str, klass: object, severity: object) -> tuple[str, str]:
        """The RSIT category and the policy severity of an alert, from its signature, class and severity as sent."""
        seen = (signature, klass, severity)
        try:
            found = self._seen.get(seen)
        except TypeError:  # a class or severity that is a list or an object: worked out, not remembered
            return self._classify(signature, klass, severity)
        if found is None:
            if len(self._seen) > MAX_REMEMBERED:  # a sensor's rule set is bounded; a hostile stream is not
                self._seen.clear()
            found = self._seen[seen] = self._classify(signature, klass, severity)
        return found

    def _classify(self, signature: str, klass: object, severity: object) -> tuple[str, str]:
        level = self._severities.get(str(severity), self._default)
        for pattern, category, ranked in self._rules:
            if pattern.search(signature):
                return category, ranked or level
        if isinstance(klass, str) and (by_class := self._categories.get(klass.lower())) is not None:
            return by_class, level
        lowered = signature.lower()
        for prefix, category in self._families:
            if lowered.startswith(prefix) and lowered[len(prefix) : len(prefix) + 1] in ("", " "):
                return category, level
        return OTHER, level


def converter(mapping: EveMapping) -> Callable[[Any], Alert]:
    classes = Classes(mapping)
    return lambda record: to_alert(record, classes)


def to_alert(record: Any, mapping: Classes) -> Alert:
    if not isinstance(record, dict):
        raise Rejected("invalid", "record: is not a JSON object")
    event_type = record.get("event_type", "alert")
    if event_type != "alert":
        raise Skipped(event_type)
    rule = record.get("alert")
    if not isinstance(rule, dict):
        raise Rejected("invalid", "alert: is missing")
    timestamp = record.get("timestamp")
    at = parse_time(timestamp, "timestamp")
    text = rule.get("signature")
    sid = rule.get("signature_id")
    if not isinstance(text, str) or not text.strip():
        if sid is None:
            raise Rejected("invalid", "alert.signature: is missing")
        text = f"signature {sid}"
    signature = f"{rule.get('gid', 1)}:{sid}" if sid is not None else text[:200]
    dest, src = record.get("dest_ip"), record.get("src_ip")
    addresses = tuple(a for a in (dest, src) if isinstance(a, str))
    if not addresses:
        raise Rejected("invalid", "dest_ip, src_ip: neither is given")
    category, severity = mapping.classify(text, rule.get("category"), rule.get("severity"))
    key = alert_key(
        at,
        timestamp,
        record.get("flow_id"),
        signature,
        rule.get("rev"),
        src,
        record.get("src_port"),
        dest,
        record.get("dest_port"),
        record.get("tx_id"),
        record.get("pcap_cnt"),
    )
    return Alert(key, at, addresses, signature, text.strip()[:500], severity, category, record, describe)


def describe(record: dict[str, Any]) -> str:
    rule = record["alert"]
    return (
        f"Suricata signature {rule.get('gid', 1)}:{rule.get('signature_id')} rev {rule.get('rev')}: "
        f"{rule.get('signature')}. Class: {rule.get('category') or 'none'}. First alert "
        f"{record.get('src_ip')}:{record.get('src_port')} -> {record.get('dest_ip')}:{record.get('dest_port')} "
        f"{record.get('proto', '')}."
    )
