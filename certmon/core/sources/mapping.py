"""How alerts map to incidents: severities, RSIT categories, labels and the grouping window.

The defaults below apply unless ``CERTMON_INGEST_MAPPING`` names a TOML file with the sections to change, e.g.::

    window_minutes = 15
    remember_days = 400   # imports are recognised for this long; older alerts are refused
    [eve.severities]
    "1" = "critical"
    [wazuh.levels]        # lowest rule.level of each severity
    critical = 13
    [alertmanager]
    agency_label = "department"
"""

from __future__ import annotations

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


class EveMapping(_Section):
    severities: dict[str, str] = Field(default_factory=lambda: {"1": "high", "2": "medium", "3": "low"})
    default_severity: str = "low"
    categories: dict[str, str] = Field(default_factory=lambda: dict(EVE_CATEGORIES))

    _check_categories = field_validator("categories")(_rsit_values)


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
