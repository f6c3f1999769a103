"""Slow down, then lock out, repeated failed client authentication (per client and address).

After ``slow_after`` failures in the window each further failure is answered only after a
delay; at ``limit`` failures the client id (or the source address) is refused for
``lock_seconds``, even with the right secret. :class:`Lockout` keeps its state in the
gateway process; ``serving/redis_limits.py`` has the same rules shared through Redis.
"""

from __future__ import annotations

from collections import defaultdict, deque
from threading import Lock
from typing import Protocol

from bastion.errors import RateLimited
from bastion.types import Clock

SLOW_DOWN_SECONDS = 0.5


class LockedOut(RateLimited):
    """Too many failed authentications: refused for a while."""

    code = "locked"
    public_message = "Too many failed attempts; try again later."


class LockoutCounter(Protocol):
    """Counts failed authentication and refuses locked client ids and addresses."""

    def check(self, *, client_id: str, source: str) -> None:
        """Raise LockedOut when the client id or the address is locked."""
        ...

    def failure(self, *, client_id: str, source: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        ...

    def success(self, *, client_id: str) -> None:
        """Forget the client's failures."""
        ...


class Lockout:
    """Counts authentication failures by client id and by source address."""

    def __init__(
        self, *, limit: int, window: float, lock_seconds: float, clock: Clock, slow_after: int = 3
    ) -> None:
        self.limit, self.window, self.lock_seconds = limit, window, lock_seconds
        self.slow_after = slow_after
        self._clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self._lock = Lock()

    def check(self, *, client_id: str, source: str) -> None:
        """Refuse a locked client id or address.

        Raises:
            LockedOut: either is locked; ``retry_after`` says for how long.
        """
        now = self._clock()
        with self._lock:
            until = max(
                self._locked_until.get(_key("client", client_id), 0.0),
                self._locked_until.get(_key("source", source), 0.0),
            )
        if until > now:
            raise LockedOut(retry_after=until - now)

    def failure(self, *, client_id: str, source: str) -> float:
        """Count a failure; return how long to wait before answering it."""
        now = self._clock()
        worst = 0
        with self._lock:
            for key in (_key("client", client_id), _key("source", source)):
                times = self._failures[key]
                times.append(now)
                while times and times[0] < now - self.window:
                    times.popleft()
                if len(times) >= self.limit:
                    self._locked_until[key] = now + self.lock_seconds
                    times.clear()
                worst = max(worst, len(times))
        return SLOW_DOWN_SECONDS if worst > self.slow_after else 0.0

    def success(self, *, client_id: str) -> None:
        """Forget the client's failures once it authenticates."""
        with self._lock:
            self._failures.pop(_key("client", client_id), None)


def _key(kind: str, value: str) -> str:
    return f"{kind}:{value}"
