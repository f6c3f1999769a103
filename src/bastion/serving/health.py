"""Whether the gateway's backends answer: the database and, when configured, Redis.

``GET /v2/health/ready`` asks :meth:`Backends.is_ready`; ``GET /v2/health/live`` never does,
so a backend that hangs makes the gateway *not ready* (take it out of rotation) without
making it *not alive* (restart it, which would not help).
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.errors import BastionError
from bastion.storage import Database

logger = logging.getLogger("bastion.serving")


class Backends:
    """Probes the database and Redis, each within ``timeout`` seconds, off the event loop."""

    def __init__(
        self, *, database: Database, shared: aioredis.Redis | None, timeout: float
    ) -> None:
        self._database = database
        self._shared = shared
        self._timeout = timeout
        self._probe: asyncio.Future[bool] | None = None

    async def is_ready(self) -> bool:
        """True when every backend answered within the timeout; never raises."""
        answers = await asyncio.gather(self._database_answers(), self._redis_answers())
        return all(answers)

    async def _database_answers(self) -> bool:
        # One probe at a time: a database that hangs holds one thread, however often a load
        # balancer asks, and every answer until that probe returns is "not ready".
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(asyncio.to_thread(self._select_one))
        try:
            return await asyncio.wait_for(asyncio.shield(self._probe), self._timeout)
        except TimeoutError:
            logger.warning("readiness: the database did not answer within %s s", self._timeout)
            return False

    def _select_one(self) -> bool:
        try:
            with self._database.transaction() as connection:
                connection.exec_driver_sql("SELECT 1")
        except BastionError as exc:
            logger.warning("readiness: the database does not answer (%s)", exc.detail)
            return False
        return True

    async def _redis_answers(self) -> bool:
        if self._shared is None:
            return True
        try:
            return bool(await asyncio.wait_for(self._shared.ping(), self._timeout))
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("readiness: Redis does not answer (%s)", type(exc).__name__)
            return False
