"""Rate limits: a token bucket per key (a client address, a token), in bounded memory.

Each key may spend ``per_minute`` units at once and regains them at ``per_minute`` a minute. The buckets live in an
LRU of at most ``max_keys`` entries: a flood of new keys evicts the least recently seen ones instead of growing the
memory, and a key evicted that way starts again with a full bucket, which is no more than a new key gets anyway.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

MAX_KEYS = 50_000  # about 150 bytes each: a flood of addresses costs at most a few MiB


class RateLimit:
    def __init__(self, per_minute: int, max_keys: int = MAX_KEYS) -> None:
        if per_minute <= 0 or max_keys <= 0:
            raise ValueError("per_minute and max_keys must be greater than zero")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # units regained per second
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key: (units left, as of when)

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self.capacity
        units, then = entry
        # A clock that steps back regains nothing rather than taking units away.
        return min(self.capacity, units + max(0.0, now - then) * self.rate)

    def retry_after(self, key: str, now: float) -> int | None:
        """Seconds until ``key`` may spend a unit again, or None if it may now; this spends nothing."""
        level = self._level(key, now)
        if level >= 1.0:
            return None
        return max(1, math.ceil((1.0 - level) / self.rate))

    def spend(self, key: str, now: float) -> int | None:
        """Spend one unit of ``key``; None if it had one, else the seconds until it has one again."""
        wait = self.retry_after(key, now)
        if wait is not None:
            self._buckets.move_to_end(key)
            return wait
        self._buckets[key] = (self._level(key, now) - 1.0, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return None

    def refund(self, key: str, now: float) -> None:
        """Give back a unit spent in advance (a lookup reserved it; the token turned out good)."""
        if key in self._buckets:
            self._buckets[key] = (min(self.capacity, self._level(key, now) + 1.0), now)


def address_key(address: str) -> str:
    """The key a client address is limited under: an IPv6 address by its /64, which one host usually holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_address(peer: str | None, forwarded_for: str | None, trusted: tuple[str, ...]) -> str:
    """The address a request comes from: the peer, or, when the peer is a trusted proxy, whom it forwarded for.

    X-Forwarded-For is read from its end: each proxy appends the address it was reached from, so the last entry not
    itself a trusted proxy is the client; entries before it are whatever the client chose to send.
    """
    if peer is None:
        return "unknown"
    if not trusted or forwarded_for is None or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        if not _is_address(hop):
            break
        client = hop
        if not _within(hop, trusted):
            break
    return client


def _is_address(raw: str) -> bool:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n) for n in networks)
