"""Wazuh alerts, one JSON object a line as the manager writes ``alerts.json``."""

from __future__ import annotations

from typing import Any

from certmon.core.sources import OTHER, Alert, Rejected, alert_key, parse_time
from certmon.core.sources.mapping import WazuhMapping

SOURCE = "wazuh"


def to_alert(record: Any, mapping: WazuhMapping) -> Alert:
    if not isinstance(record, dict):
        raise Rejected("invalid", "record: is not a JSON object")
    rule = record.get("rule")
    if not isinstance(rule, dict):
        raise Rejected("invalid", "rule: is missing")
    timestamp = record.get("timestamp")
    at = parse_time(timestamp, "timestamp")
    level = rule.get("level")
    if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level <= 16:
        raise Rejected("invalid", "rule.level: must be an integer 0-16")
    severity = mapping.severity(level)
    if severity is None:
        raise Rejected("below_threshold", f"rule.level: {level} is below every severity band")
    rule_id = rule.get("id")
    text = rule.get("description")
    if rule_id is None and not isinstance(text, str):
        raise Rejected("invalid", "rule.id: is missing")
    text = text.strip() if isinstance(text, str) and text.strip() else f"Wazuh rule {rule_id}"
    signature = f"rule:{rule_id}" if rule_id is not None else text[:200]
    agent = _object(record.get("agent"))
    data = _object(record.get("data"))
    candidates = (agent.get("ip"), data.get("dstip"), data.get("srcip"))
    addresses = tuple(a for a in candidates if isinstance(a, str))
    if not addresses:
        raise Rejected("invalid", "agent.ip, data.dstip, data.srcip: none is given")
    groups: list[Any] = rule["groups"] if isinstance(rule.get("groups"), list) else []
    category = next(
        (mapping.groups[g.lower()] for g in groups if isinstance(g, str) and g.lower() in mapping.groups), OTHER
    )
    manager = _object(record.get("manager"))
    key = alert_key(
        at, manager.get("name"), record.get("id"), timestamp, rule_id, agent.get("id"), record.get("full_log")
    )
    return Alert(key, at, addresses, signature, text[:500], severity, category, record, describe)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe(record: dict[str, Any]) -> str:
    rule, agent = record["rule"], _object(record.get("agent"))
    groups = rule.get("groups") if isinstance(rule.get("groups"), list) else []
    return (
        f"Wazuh rule {rule.get('id')} level {rule.get('level')}: {rule.get('description')}. "
        f"Groups: {', '.join(map(str, groups)) or 'none'}. "
        f"First alert on agent {agent.get('name', '?')} ({agent.get('ip', '?')})."
    )
