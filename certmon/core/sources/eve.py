"""Suricata EVE alerts (``event_type: alert``), as the eve-log output writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from certmon.core.sources import OTHER, Alert, Rejected, Skipped, alert_key, parse_time
from certmon.core.sources.mapping import EveMapping

SOURCE = "suricata"


class Classes:
    """The mapping's answers for the classes and severities a sensor uses, each worked out once."""

    def __init__(self, mapping: EveMapping) -> None:
        self._categories = dict(mapping.categories)
        self._severities = dict(mapping.severities)
        self._default = mapping.default_severity
        self._category: dict[str, str] = {}
        self._severity: dict[object, str] = {}

    def category(self, klass: str) -> str:
        found = self._category.get(klass)
        if found is None:
            found = self._category[klass] = self._categories.get(klass.lower(), OTHER)
        return found

    def severity(self, value: object) -> str:
        found = self._severity.get(value)
        if found is None:
            found = self._severity[value] = self._severities.get(str(value), self._default)
        return found


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
    klass = rule.get("category")
    category = mapping.category(klass) if isinstance(klass, str) else OTHER
    severity = mapping.severity(rule.get("severity"))
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
