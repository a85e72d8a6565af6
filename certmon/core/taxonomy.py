"""Classification vocabularies: RSIT incident types, TLP 2.0 labels, CII sectors (MISP taxonomies, CC0)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

TLP_LABELS = ("TLP:RED", "TLP:AMBER+STRICT", "TLP:AMBER", "TLP:GREEN", "TLP:CLEAR")

# Thai Cybersecurity Act B.E. 2562 s.49, plus "government" for agencies outside the CII sectors.
SECTORS = (
    "national-security",
    "public-services",
    "banking-finance",
    "it-telecom",
    "transport-logistics",
    "energy-utilities",
    "public-health",
    "other-cii",
    "government",
)


@cache
def rsit_categories() -> frozenset[str]:
    """Every ``class/type`` of the Reference Security Incident Taxonomy."""
    data = json.loads(resources.files("certmon.core").joinpath("data/rsit.json").read_text(encoding="utf-8"))
    return frozenset(f"{group['predicate']}/{entry['value']}" for group in data["values"] for entry in group["entry"])


@cache
def rsit_names() -> dict[str, str]:
    """The English name of every RSIT ``class/type``, class and type, as "Malicious Code: C2 Server"."""
    data = json.loads(resources.files("certmon.core").joinpath("data/rsit.json").read_text(encoding="utf-8"))
    classes = {p["value"]: p.get("expanded", p["value"]) for p in data["predicates"]}
    names = {}
    for group in data["values"]:
        for entry in group["entry"]:
            names[f"{group['predicate']}/{entry['value']}"] = f"{classes[group['predicate']]}: {entry['expanded']}"
    return names
