"""The pieces under the import: the streaming reader, the in-memory network table, the mapping file."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from certmon.core.policy import Policy
from certmon.core.settings import Settings
from certmon.core.sources.mapping import MappingError, load_mapping
from certmon.core.sources.records import RecordError, RecordReader
from certmon.store import db
from certmon.store.networks import NetworkTable, agency_for_address
from certmon.web.app import create_app


def read_in_chunks(data: bytes, size: int) -> list[tuple[int, object]]:
    reader = RecordReader()
    out = []
    for start in range(0, len(data), size):
        out += reader.feed(data[start : start + size])
    return out + reader.close()


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_records_split_across_chunks_at_any_byte_are_read_whole(size: int) -> None:
    """NDJSON and a JSON array give the same records whatever the chunk boundaries, UTF-8 included."""
    records = [{"n": n, "text": "ภัยคุกคาม \u2603", "nested": {"list": [1, 2.5, None]}} for n in range(20)]
    lines = b"\n".join(json.dumps(r, ensure_ascii=False).encode() for r in records) + b"\n\n"
    array = json.dumps(records, ensure_ascii=False, indent=2).encode()
    assert [r for _, r in read_in_chunks(lines, size)] == records
    assert [r for _, r in read_in_chunks(b"  \n" + array, size)] == records


def test_a_broken_array_reports_where_it_broke_and_keeps_the_items_before() -> None:
    """Items before the damage are read; the rest of the array is reported as one error, not silently lost."""
    out = read_in_chunks(b'[{"a": 1}, {"b": 2}, {"c": ]', 5)
    assert [r for _, r in out[:2]] == [{"a": 1}, {"b": 2}]
    assert isinstance(out[2][1], RecordError)
    assert "after item 2" in str(out[2][1])


async def test_the_in_memory_table_and_the_gist_lookup_agree_on_every_address(conn: asyncpg.Connection) -> None:
    """Random addresses against nested IPv4 and IPv6 networks: the bulk table answers as the SQL query does."""
    networks = {
        "AAA": ["10.0.0.0/8", "2001:db8::/32"],
        "BBB": ["10.47.0.0/16", "10.47.8.0/24", "2001:db8:47::/48"],
        "CCC": ["10.47.8.128/25", "192.168.0.0/24", "10.47.0.0/16"],
    }
    for code, nets in networks.items():
        await conn.execute("INSERT INTO agencies (code, name, sector) VALUES ($1, $1, 'government')", code)
        await conn.execute("INSERT INTO agency_networks SELECT $1, unnest($2::cidr[])", code, nets)
    q = db.Queries.load()
    table = await NetworkTable.load(conn, q)
    rng = random.Random(5)
    addresses = [f"10.47.8.{rng.randrange(256)}" for _ in range(40)]
    addresses += [f"10.{rng.choice([0, 47])}.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(40)]
    addresses += ["192.168.0.9", "192.168.1.9", "8.8.8.8", "2001:db8:47::1", "2001:db8:1::1", "2001:db9::1"]
    addresses += ["10.47.8.200:443", "not-an-address", ""]
    for address in addresses:
        assert table.lookup(address) == await agency_for_address(conn, q, address), address
    assert table.lookup("10.47.1.1") == "BBB"  # two agencies claim 10.47.0.0/16: the smaller code wins
    assert table.lookup("10.47.8.200") == "CCC"


def test_a_mapping_file_naming_an_unknown_severity_or_category_is_refused_naming_the_key(tmp_path: Path) -> None:
    """Mistakes in CERTMON_INGEST_MAPPING are reported with the file and the key, before any alert is read."""
    bad_category = tmp_path / "a.toml"
    bad_category.write_text('[eve.categories]\n"Web Application Attack" = "web/attack"\n')
    with pytest.raises(MappingError, match=r"a.toml: eve.categories: Web Application Attack: 'web/attack'"):
        load_mapping(bad_category)
    bad_severity = tmp_path / "b.toml"
    bad_severity.write_text('window_minutes = 10\n[eve.severities]\n"1" = "urgent"\n')
    mapping = load_mapping(bad_severity)
    assert mapping.window.total_seconds() == 600
    with pytest.raises(MappingError, match=r"eve.severities.1: 'urgent' is no severity"):
        mapping.check(Policy())


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("window_minutes = -5\n", "window_minutes"),
        ('[wazuh.levels]\ncritical = "high"\n', "wazuh.levels.critical"),
        ('[alertmanager.severities]\ncritical = "urgent"\n', "alertmanager.severities.critical"),
    ],
)
def test_an_unusable_mapping_file_stops_the_app_being_created(
    tmp_path: Path, settings: Settings, text: str, key: str
) -> None:
    """A bad value, or a severity the policy lacks, is a MappingError naming the key when the app is created."""
    path = tmp_path / "mapping.toml"
    path.write_text(text)
    with pytest.raises(MappingError, match=re.escape(f"{key}: ")):
        create_app(replace(settings, ingest_mapping=path))
