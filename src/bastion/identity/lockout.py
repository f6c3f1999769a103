"""Slow down and bound failed client authentication, without letting strangers lock a client out.

Three counters decide (docs/identity.md, "Lockout"):

* **the pair** (client id, address): after ``pair_failures`` failures within ``window`` that
  pair is refused for ``lock_seconds``, even with the right secret. Only the address that
  guessed is locked, so an attacker can lock out nobody but itself.
* **the client id**, over every address: at most ``client_failures`` failures per
  ``client_window``. Past that budget only addresses where this client authenticated in
  the last ``trust_seconds`` may still try; every other address is refused until the
  budget window ends. This is what keeps a guess from many addresses (a botnet) slow.
* **the address**, over every client id: only slows answers down (a progressive delay),
  never refuses, so one bad client behind a NAT or proxy locks nobody else out. A success
  from the address clears it.

Every attempt is counted *before* its secret is checked and refunded when it was no
failure, so a burst of concurrent guesses cannot slip past the limits. :class:`Lockout`
keeps its state in the gateway process; ``serving/redis_limits.py`` has the same rules
shared through Redis (``tests/unit/identity/test_lockout.py`` runs both through one checklist).

The address is whatever the HTTP edge says the client's address is: this module does not
read headers, so trusted-proxy support only changes that one input. An IPv6 address counts
by its /64, the block one subscriber gets: walking through it gains an attacker nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from threading import Lock
from typing import Protocol

from bastion.errors import RateLimited
from bastion.types import Clock

HOUR = 3600
# Long enough that a client which authenticates now and then keeps its standing through an
# attack; short enough that an address a client has left stops being trusted.
TRUST_SECONDS = 30 * 86_400
_MAX_TRACKED = 100_000


class LockedOut(RateLimited):
    """Too many failed authentications: refused for a while."""

    code = "locked"
    public_message = "Too many failed attempts; try again later."


@dataclass(frozen=True)
class LockoutRules:
    """The limits of the lockout (every backend enforces the same ones)."""

    pair_failures: int
    window: float
    lock_seconds: float
    client_failures: int
    client_window: float = HOUR
    trust_seconds: float = TRUST_SECONDS
    slow_after: int = 3
    first_delay: float = 0.25
    max_delay: float = 2.0

    def delay(self, failures: int) -> float:
        """How long to wait before answering a failure, given the largest failure count."""
        if failures <= self.slow_after:
            return 0.0
        # Doubles with each failure; capped so a slow answer never ties a connection up long
        # (and the exponent too, so no count overflows a float).
        doublings = min(failures - self.slow_after - 1, 64)
        return float(min(self.max_delay, self.first_delay * 2.0**doublings))


class LockoutCounter(Protocol):
    """Counts authentication attempts of client ids from addresses and refuses the excess."""

    async def attempt(self, *, client_id: str, source: str) -> None:
        """Count an attempt as a failure until told otherwise.

        Raises:
            LockedOut: this attempt is refused without its secret being checked.
            BackendError: the shared store does not answer (refused, not let through).
        """
        ...

    async def failure(self, *, client_id: str, source: str) -> float:
        """The attempt failed; return how long to wait before answering it."""
        ...

    async def success(self, *, client_id: str, source: str) -> None:
        """The attempt authenticated: refund it, clear the pair and the address, trust the pair."""
        ...

    async def release(self, *, client_id: str, source: str) -> None:
        """The attempt ended before a secret was judged: refund it."""
        ...


@dataclass
class _Count:
    value: int
    expires: float


class Lockout:
    """The lockout in this gateway process (one process; use Redis for several)."""

    def __init__(self, *, rules: LockoutRules, clock: Clock) -> None:
        self.rules = rules
        self._clock = clock
        self._counts: dict[str, _Count] = {}
        self._until: dict[str, float] = {}  # pair locks and trusted pairs: key -> expiry
        self._lock = Lock()

    async def attempt(self, *, client_id: str, source: str) -> None:
        """Refuse a locked pair, or a stranger once the client's budget is spent; count the rest.

        Raises:
            LockedOut: refused; ``retry_after`` says for how long.
        """
        keys, rules, now = state_keys(client_id, source), self.rules, self._clock()
        with self._lock:
            locked = self._until_of(keys.pair_lock, now)
            if locked:
                raise LockedOut(retry_after=locked, limit=PAIR_LOCKED)
            pair = self._live(keys.pair, now)
            if pair is not None and pair.value >= rules.pair_failures:
                raise LockedOut(retry_after=pair.expires - now, limit=PAIR_LOCKED)
            client = self._live(keys.client, now)
            trusted = self._until_of(keys.trusted, now) > 0
            if not trusted and client is not None and client.value >= rules.client_failures:
                raise LockedOut(retry_after=client.expires - now, limit=CLIENT_SPENT)
            self._add(keys.pair, 1, rules.window, now)
            self._add(keys.client, 1, rules.client_window, now)
            self._add(keys.address, 1, rules.window, now)

    async def failure(self, *, client_id: str, source: str) -> float:
        """Lock the pair once it reached its limit; return the delay before answering."""
        keys, rules, now = state_keys(client_id, source), self.rules, self._clock()
        with self._lock:
            counts = [self._value(key, now) for key in (keys.pair, keys.address, keys.client)]
            if counts[0] >= rules.pair_failures:
                self._set_until(keys.pair_lock, now + rules.lock_seconds, now)
                self._counts.pop(keys.pair, None)
        return rules.delay(max(counts))

    async def success(self, *, client_id: str, source: str) -> None:
        """Refund the attempt, clear the pair and the address, and trust the pair."""
        keys, now = state_keys(client_id, source), self._clock()
        with self._lock:
            for key in (keys.pair, keys.address):
                self._counts.pop(key, None)
            self._until.pop(keys.pair_lock, None)
            self._add(keys.client, -1, self.rules.client_window, now)
            self._set_until(keys.trusted, now + self.rules.trust_seconds, now)

    async def release(self, *, client_id: str, source: str) -> None:
        """Refund the attempt."""
        keys, rules, now = state_keys(client_id, source), self.rules, self._clock()
        with self._lock:
            self._add(keys.pair, -1, rules.window, now)
            self._add(keys.client, -1, rules.client_window, now)
            self._add(keys.address, -1, rules.window, now)

    def _live(self, key: str, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and count.expires <= now:
            del self._counts[key]
            return None
        return count

    def _value(self, key: str, now: float) -> int:
        count = self._live(key, now)
        return count.value if count else 0

    def _add(self, key: str, step: int, ttl: float, now: float) -> None:
        count = self._live(key, now)
        if count is None:
            if step < 0:  # nothing to refund: the count has lapsed or was cleared
                return
            if len(self._counts) >= _MAX_TRACKED:
                self._counts = _pruned(self._counts, now)
            count = self._counts[key] = _Count(0, now + ttl)
        elif step > 0 and count.value == 0:
            count.expires = now + ttl  # refunded to nothing: a new window, as in Redis
        count.value = max(0, count.value + step)

    def _until_of(self, key: str, now: float) -> float:
        """Seconds left of a lock or a trust, 0 when there is none."""
        until = self._until.get(key, 0.0)
        return until - now if until > now else 0.0

    def _set_until(self, key: str, until: float, now: float) -> None:
        if key not in self._until and len(self._until) >= _MAX_TRACKED:
            self._until = {k: u for k, u in self._until.items() if u > now}
            if len(self._until) >= _MAX_TRACKED:
                # Still full of live entries: keep the nine tenths that last longest.
                kept = sorted(self._until.items(), key=lambda item: item[1])
                self._until = dict(kept[len(kept) // 10 :])
        self._until[key] = until


def _pruned(counts: dict[str, _Count], now: float) -> dict[str, _Count]:
    """Drop lapsed counts; if that is not enough, the smallest tenth.

    A client under attack has a large count and is kept; what goes is the counts that
    limit nobody yet, so pruning never gives a guesser a fresh budget it had nearly spent.
    """
    live = {k: c for k, c in counts.items() if c.expires > now}
    if len(live) < _MAX_TRACKED:
        return live
    kept = sorted(live.items(), key=lambda item: item[1].value)
    return dict(kept[len(kept) // 10 :])


PAIR_LOCKED = "lockout of this client id at this address"
CLIENT_SPENT = "failure budget of this client id from new addresses"


@dataclass(frozen=True)
class StateKeys:
    """The names of one attempt's counters, locks and trust (the same in every backend)."""

    pair: str
    pair_lock: str
    client: str
    address: str
    trusted: str


def state_keys(client_id: str, source: str) -> StateKeys:
    """The state names of ``client_id`` at ``source``.

    Both are digested, so a client id of any length or content names a fixed-size key
    and no pair of values can collide with another by containing a separator.
    """
    client, address = _digest(client_id), _digest(network_of(source))
    pair = _digest(client + address)
    return StateKeys(
        pair=f"pair:{pair}",
        pair_lock=f"locked:{pair}",
        client=f"client:{client}",
        address=f"address:{address}",
        trusted=f"trusted:{pair}",
    )


def network_of(source: str) -> str:
    """What the lockout counts of an address: IPv4 whole, IPv6 by its /64 network."""
    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        return source  # not an IP address (a test transport, a Unix socket): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
