"""Which agency an IP address belongs to: the most specific of the agencies' registered networks.

Single lookups ask PostgreSQL (``agency_for_address``, a GiST index on ``inet``). Bulk imports load every
registered network once into a ``NetworkTable`` that applies the same rule (longest prefix, then the smallest
agency code) in memory, since a database round trip per distinct address would dominate an import.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import asyncpg

from certmon.store.db import Queries

CACHE_LIMIT = 200_000  # addresses remembered by a table; memory stays bounded whatever the file


def clean_address(raw: object) -> str | None:
    """The address in canonical form, or None for anything that is not an IP address (hostnames); drops a port."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        pass
    host, sep, port = raw.rpartition(":")
    if sep and port.isdigit():
        try:
            return str(ipaddress.ip_address(host.removeprefix("[").removesuffix("]")))
        except ValueError:
            return None
    return None


async def agency_for_address(conn: asyncpg.Connection, q: Queries, address: str) -> str | None:
    """The agency whose most specific network contains the address, or None."""
    clean = clean_address(address)
    if clean is None:
        return None
    code: str | None = await conn.fetchval(q["agency_for_address"], clean)
    return code


class NetworkTable:
    def __init__(self, networks: Iterable[tuple[str, str]], cache_limit: int = CACHE_LIMIT) -> None:
        # For each IP version: prefix length -> {network number >> host bits: agency}, longest prefixes first.
        self._tables: dict[int, list[tuple[int, int, dict[int, str]]]] = {4: [], 6: []}
        by_length: dict[tuple[int, int], dict[int, str]] = {}
        for code, cidr in networks:
            net = ipaddress.ip_network(cidr)
            shift = net.max_prefixlen - net.prefixlen
            table = by_length.setdefault((net.version, net.prefixlen), {})
            key = int(net.network_address) >> shift
            if key not in table or code < table[key]:
                table[key] = code
        for (version, length), table in sorted(by_length.items(), key=lambda item: -item[0][1]):
            bits = 32 if version == 4 else 128
            self._tables[version].append((length, bits - length, table))
        self._cache: dict[str, str | None] = {}
        self._cache_limit = cache_limit

    @classmethod
    async def load(cls, conn: asyncpg.Connection, q: Queries) -> NetworkTable:
        return cls((r["agency_code"], r["network"]) for r in await conn.fetch(q["agency_networks_all"]))

    def lookup(self, raw: str) -> str | None:
        try:
            return self._cache[raw]
        except KeyError:
            pass
        found = None
        parsed = _parse(raw)
        if parsed is not None:
            version, number = parsed
            for _, shift, table in self._tables[version]:
                found = table.get(number >> shift)
                if found is not None:
                    break
        if len(self._cache) >= self._cache_limit:
            self._cache.clear()
        self._cache[raw] = found
        return found

    def agency(self, addresses: Iterable[str]) -> str | None:
        """The agency of the first address that falls in a registered network."""
        for address in addresses:
            code = self.lookup(address)
            if code is not None:
                return code
        return None


def _parse(raw: str) -> tuple[int, int] | None:
    """(IP version, address as an integer); inet_pton is strict and several times faster than ipaddress."""
    for family, version in ((socket.AF_INET, 4), (socket.AF_INET6, 6)):
        try:
            return version, int.from_bytes(socket.inet_pton(family, raw), "big")
        except OSError:
            continue
    address = clean_address(raw)
    if address is None:
        return None
    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)
