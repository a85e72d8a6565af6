"""How alerts map to incidents: severities, RSIT categories, labels and the grouping window.

The defaults below apply unless ``CERTMON_INGEST_MAPPING`` names a TOML file with the sections to change, e.g.::

    window_minutes = 15
    remember_days = 400   # imports are recognised for this long; older alerts are refused
    [eve.severities]
    "1" = "critical"
    [[eve.signatures]]    # replaces the built-in list; tried before alert.category
    pattern = "heartbleed"
    category = "intrusion-attempts/ids-alert"
    severity = "critical"
    [wazuh.levels]        # lowest rule.level of each severity
    critical = 13
    [alertmanager]
    agency_label = "department"
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from certmon.core.errors import CertmonError
from certmon.core.policy import Policy
from certmon.core.sources import OTHER
from certmon.core.taxonomy import rsit_categories

# Suricata classification.config descriptions (alert.category) whose meaning has an RSIT type.
EVE_CATEGORIES = {
    "attempted information leak": "information-gathering/scanner",
    "detection of a network scan": "information-gathering/scanner",
    "information leak": "information-content-security/unauthorised-information-access",
    "large scale information leak": "information-content-security/data-leak",
    "web application attack": "intrusion-attempts/exploit",
    "attempted administrator privilege gain": "intrusion-attempts/exploit",
    "attempted user privilege gain": "intrusion-attempts/exploit",
    "successful administrator privilege gain": "intrusions/privileged-account-compromise",
    "successful user privilege gain": "intrusions/unprivileged-account-compromise",
    "a network trojan was detected": "malicious-code/infected-system",
    "malware command and control activity detected": "malicious-code/c2-server",
    "domain observed used for c2 detected": "malicious-code/c2-server",
    "exploit kit activity detected": "malicious-code/malware-distribution",
    "executable code was detected": "malicious-code/malware-distribution",
    "attempted denial of service": "availability/dos",
    "denial of service": "availability/dos",
    "detection of a denial of service attack": "availability/dos",
    "attempted login with suspicious username": "intrusion-attempts/brute-force",
    "attempt to login by a default username and password": "intrusion-attempts/brute-force",
    "possible social engineering attempted": "information-gathering/social-engineering",
    "crypto currency mining activity detected": "fraud/unauthorised-use-of-resources",
}

# Signatures whose words say more than their class: tried first, in this order, searched anywhere in
# alert.signature (any case). A rule's severity replaces the one alert.severity gives: rule writers rank a
# Heartbleed probe or a CnC check-in "2" or even "3" ("Potentially Bad Traffic"), which a CERT must not read as low.
EVE_SIGNATURES: tuple[tuple[str, str, str | None], ...] = (
    (r"heart ?(bleed|beat)", "intrusion-attempts/ids-alert", "high"),
    (r"ransom", "information-content-security/unauthorised-information-modification", "critical"),
    (r"^ET CNC\b|\b(cnc|c2|c&c)\b|command and control", "malicious-code/c2-server", "high"),
    (r"\b(ek|exploit kit)\b", "malicious-code/malware-distribution", "high"),
    (r"eternalblue|doublepulsar|ms08-067", "intrusion-attempts/ids-alert", "high"),
    (r"attack_response", "intrusions/system-compromise", "high"),
    (r"lateral movement", "intrusions/system-compromise", "high"),
    (r"coin-?hive|miner\b|mining", "fraud/unauthorised-use-of-resources", None),
    (r"poodle|freak|weak export|sslv3", "vulnerable/weak-crypto", None),
    (r"cve-\d{4}-\d+", "intrusion-attempts/ids-alert", None),
)

# Emerging Threats and GPL rule families (the signature's first words): the fallback when neither a signature
# above nor alert.category says more. The longest matching prefix wins.
EVE_FAMILIES = {
    "et trojan": "malicious-code/infected-system",
    "et malware": "malicious-code/infected-system",
    "et worm": "malicious-code/infected-system",
    "et mobile_malware": "malicious-code/infected-system",
    "et cnc": "malicious-code/c2-server",
    "et exploit": "intrusion-attempts/exploit",
    "gpl exploit": "intrusion-attempts/exploit",
    "et netbios": "intrusion-attempts/exploit",
    "et web_server": "intrusion-attempts/exploit",
    "gpl web_server": "intrusion-attempts/exploit",
    "et web_specific_apps": "intrusion-attempts/exploit",
    "et web_client": "malicious-code/malware-distribution",
    "et current_events": "malicious-code/malware-distribution",
    "et scan": "information-gathering/scanner",
    "gpl scan": "information-gathering/scanner",
    "et dos": "availability/dos",
    "gpl dos": "availability/dos",
    "et attack_response": "intrusions/system-compromise",
    "gpl attack_response": "intrusions/system-compromise",
    # Policy, chat, file sharing and Tor rules see agency hosts used against the agency's rules of use.
    "et policy": "fraud/unauthorised-use-of-resources",
    "et chat": "fraud/unauthorised-use-of-resources",
    "gpl chat": "fraud/unauthorised-use-of-resources",
    "et p2p": "fraud/unauthorised-use-of-resources",
    "et games": "fraud/unauthorised-use-of-resources",
    "et tor": "fraud/unauthorised-use-of-resources",
    "et dns": "malicious-code/infected-system",
    "et snmp": "information-content-security/unauthorised-information-access",
}

# Wazuh rule groups, tried in this order.
WAZUH_GROUPS = {
    "malware": "malicious-code/infected-system",
    "virustotal": "malicious-code/infected-system",
    "rootcheck": "intrusions/system-compromise",
    "exploit_attempt": "intrusion-attempts/exploit",
    "sql_injection": "intrusion-attempts/exploit",
    "web_attack": "intrusion-attempts/exploit",
    "authentication_failures": "intrusion-attempts/brute-force",
    "authentication_failed": "intrusion-attempts/brute-force",
    "recon": "information-gathering/scanner",
    "scan": "information-gathering/scanner",
    "dos": "availability/dos",
    "vulnerability-detector": "vulnerable/vulnerable-system",
    "syscheck": "information-content-security/unauthorised-information-modification",
}


class MappingError(CertmonError):
    """The ingest mapping file cannot be used; the message names the file and the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _rsit_values(value: dict[str, str]) -> dict[str, str]:
    known = rsit_categories()
    for key, category in value.items():
        if category not in known:
            raise ValueError(f"{key}: {category!r} is not an RSIT class/type")
    return {k.lower(): v for k, v in value.items()}


class SignatureRule(_Section):
    """Alerts whose signature matches ``pattern`` (a regular expression, any case) get this category and severity."""

    pattern: str
    category: str
    severity: str | None = None  # unset: alert.severity decides

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @field_validator("category")
    @classmethod
    def _rsit(cls, value: str) -> str:
        if value not in rsit_categories():
            raise ValueError(f"{value!r} is not an RSIT class/type")
        return value


def _default_signatures() -> tuple[SignatureRule, ...]:
    return tuple(SignatureRule(pattern=p, category=c, severity=s) for p, c, s in EVE_SIGNATURES)


class EveMapping(_Section):
    severities: dict[str, str] = Field(default_factory=lambda: {"1": "high", "2": "medium", "3": "low"})
    default_severity: str = "low"
    signatures: tuple[SignatureRule, ...] = Field(default_factory=_default_signatures)
    categories: dict[str, str] = Field(default_factory=lambda: dict(EVE_CATEGORIES))
    families: dict[str, str] = Field(default_factory=lambda: dict(EVE_FAMILIES))

    _check_categories = field_validator("categories", "families")(_rsit_values)


class WazuhMapping(_Section):
    levels: dict[str, Annotated[int, Field(ge=0, le=16)]] = Field(
        default_factory=lambda: {"critical": 12, "high": 9, "medium": 6, "low": 0}
    )
    groups: dict[str, str] = Field(default_factory=lambda: dict(WAZUH_GROUPS))

    _check_groups = field_validator("groups")(_rsit_values)

    def severity(self, level: int) -> str | None:
        """The severity of the highest band whose lowest level the rule reaches."""
        best: tuple[int, str] | None = None
        for name, lowest in self.levels.items():
            if level >= lowest and (best is None or lowest > best[0]):
                best = (lowest, name)
        return None if best is None else best[1]


class AlertmanagerMapping(_Section):
    agency_label: str = "agency"
    address_labels: tuple[str, ...] = ("ip", "address", "instance")
    severity_label: str = "severity"
    severities: dict[str, str] = Field(
        default_factory=lambda: {"critical": "critical", "error": "high", "warning": "medium", "info": "low"}
    )
    default_severity: str = "medium"
    category_label: str = "category"


class IngestMapping(_Section):
    window_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 30.0
    # How long the key of each imported alert is kept, so that importing it again adds nothing. Unset keeps every
    # key forever; set, keys are forgotten after this many days, and older alerts are refused at import because a
    # second import of them could no longer be recognised.
    remember_days: Annotated[int, Field(ge=1, le=100 * 366)] | None = None
    eve: EveMapping = Field(default_factory=EveMapping)
    wazuh: WazuhMapping = Field(default_factory=WazuhMapping)
    alertmanager: AlertmanagerMapping = Field(default_factory=AlertmanagerMapping)

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)

    @property
    def remember(self) -> timedelta | None:
        return None if self.remember_days is None else timedelta(days=self.remember_days)

    def check(self, policy: Policy) -> None:
        """Every severity the mapping can produce must be one of the policy's."""
        used = {
            **{f"eve.severities.{k}": v for k, v in self.eve.severities.items()},
            "eve.default_severity": self.eve.default_severity,
            **{f"eve.signatures[{i}]": r.severity for i, r in enumerate(self.eve.signatures) if r.severity},
            **{f"wazuh.levels.{k}": k for k in self.wazuh.levels},
            **{f"alertmanager.severities.{k}": v for k, v in self.alertmanager.severities.items()},
            "alertmanager.default_severity": self.alertmanager.default_severity,
        }
        for where, severity in used.items():
            if severity not in policy.severities:
                known = ", ".join(policy.severities)
                raise MappingError(f"ingest mapping {where}: {severity!r} is no severity of the policy ({known})")


def category_or_other(value: str | None) -> str:
    return value if value is not None and value in rsit_categories() else OTHER


@lru_cache(maxsize=8)
def load_mapping(path: Path | None) -> IngestMapping:
    """The mapping in a TOML file, or the defaults when path is None; MappingError naming the key on any problem."""
    if path is None:
        return IngestMapping()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return IngestMapping.model_validate(data)
    except OSError as exc:
        raise MappingError(f"{path}: cannot read ingest mapping: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: invalid TOML: {exc}") from exc
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise MappingError(f"{path}: {details}") from exc
