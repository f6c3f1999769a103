"""The request pipelines. This module is the only place where the order of stages lives.

An inference request passes, in order: authenticate → authorize → throttle →
validate → infer → harden, and is then recorded whatever happened (docs/pipeline.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from bastion.audit import AuditEvent, AuditLog
from bastion.errors import BastionError
from bastion.identity.external import ExternalIssuers
from bastion.identity.lockout import Lockout, LockoutCounter, LockoutRules
from bastion.monitor import GatewayMetrics, Monitor
from bastion.policy import ReloadingAuthorizer
from bastion.serving.cache import ModelCache, TtlCache
from bastion.serving.call import Call
from bastion.serving.health import Backends
from bastion.serving.limits import DailyQuotas, QuotaCounter, RateLimiter, TokenBucketLimiter
from bastion.serving.redis_limits import (
    RedisDailyQuotas,
    RedisLockout,
    RedisTokenBucketLimiter,
    connect,
)
from bastion.serving.runner import Runner
from bastion.serving.stages.administer import Administer
from bastion.serving.stages.authenticate import Authenticate, Sessions
from bastion.serving.stages.authorize import Authorize
from bastion.serving.stages.describe import Describe
from bastion.serving.stages.dp_query import AnswerQuery
from bastion.serving.stages.harden import Harden
from bastion.serving.stages.infer import Infer
from bastion.serving.stages.oauth import IntrospectToken, IssueToken, RevokeToken
from bastion.serving.stages.record import Record
from bastion.serving.stages.throttle import ModelLimiter, Throttle
from bastion.serving.stages.validate import Validate
from bastion.workspace import Workspace

Stage = Callable[[Call], Awaitable[None]]
_SESSIONS = 100_000
# Readiness probes wait this long for the database and Redis: far above a healthy answer,
# far below a load balancer's probe timeout.
_READY_SECONDS = 1.0
logger = logging.getLogger("bastion.serving")


class Pipeline:
    """Runs stages in order until one fails, then always records the call."""

    def __init__(self, stages: Sequence[Stage], *, record: Record) -> None:
        self._stages = tuple(stages)
        self._record = record

    @property
    def stages(self) -> tuple[Stage, ...]:
        """The stages, in the order they run."""
        return self._stages

    async def run(self, call: Call) -> Call:
        """Run ``call`` through every stage; failures end up in ``call.error``."""
        try:
            for stage in self._stages:
                await stage(call)
        except BastionError as exc:
            call.error = exc
        except Exception as exc:  # an unexpected failure still gets an audit record
            logger.exception("unexpected error in request %s", call.request_id)
            call.error = BastionError(detail=type(exc).__name__)
        await self._record(call)
        return call


def _policies(workspace: Workspace) -> ReloadingAuthorizer:
    """The workspace's policies, followed on disk; every change is an audit entry."""

    def audit(ids: tuple[str, ...] | None, description: str) -> None:
        event = AuditEvent.internal(
            event="policy_change" if ids is not None else "policy_change_rejected",
            time=workspace.clock(),
            action="policy",
            resource="policies",
            policy_ids=ids or (),
            reason=description,
        )
        workspace.audit.submit(event)  # never wait on the request path

    return ReloadingAuthorizer(workspace.paths.policies, clock=workspace.clock, on_change=audit)


def _throttle(workspace: Workspace, shared: aioredis.Redis | None) -> Throttle:
    """Rate limits and quotas: in this process, or in the ``shared`` Redis."""
    settings, clock = workspace.settings, workspace.clock
    prefix = _redis_prefix(workspace)

    def bucket(rate: float, burst: int, limit: str) -> RateLimiter:
        if shared is None:
            return TokenBucketLimiter(rate=rate, burst=burst, clock=clock, limit=limit)
        return RedisTokenBucketLimiter(
            client=shared, rate=rate, burst=burst, prefix=f"{prefix}{limit}:", limit=limit
        )

    quotas: QuotaCounter = (
        DailyQuotas(clock=clock)
        if shared is None
        else RedisDailyQuotas(client=shared, prefix=f"{prefix}quota:", clock=clock)
    )
    models = {
        name: ModelLimiter(
            rate=bucket(limit.rate_per_second, limit.burst, f"rate of model {name}")
            if limit.rate_per_second is not None
            else None,
            daily_quota=limit.daily_quota,
        )
        for name, limit in settings.model_limits.items()
    }
    return Throttle(
        principals=bucket(settings.rate_per_second, settings.rate_burst, "rate"),
        quotas=quotas,
        principal_quota=settings.daily_quota,
        models=models,
    )


def _lockout(workspace: Workspace, shared: aioredis.Redis | None) -> LockoutCounter:
    settings = workspace.settings
    rules = LockoutRules(
        pair_failures=settings.lockout_failures,
        window=settings.lockout_seconds,
        lock_seconds=settings.lockout_seconds,
        client_failures=settings.lockout_client_failures_per_hour,
    )
    if shared is None:
        return Lockout(rules=rules, clock=workspace.clock)
    return RedisLockout(client=shared, prefix=f"{_redis_prefix(workspace)}lockout:", rules=rules)


def _redis_prefix(workspace: Workspace) -> str:
    # Every gateway of this workspace (its audit key names it) shares these keys.
    return f"bastion:{workspace.audit.origin}:"


@dataclass(frozen=True)
class Pipelines:
    """One pipeline per kind of route, and the backends they need (for readiness)."""

    token: Pipeline
    revoke: Pipeline
    introspect: Pipeline
    infer: Pipeline
    describe: Pipeline
    metrics: Pipeline
    audit: Pipeline
    dp_query: Pipeline
    admin: Pipeline
    backends: Backends


def build_pipelines(
    workspace: Workspace,
    *,
    audit: AuditLog,
    metrics: GatewayMetrics,
    monitor: Monitor,
    runner: Runner,
) -> Pipelines:
    """Wire the stages from the workspace's components; ``audit`` appends to its log."""
    settings, clock = workspace.settings, workspace.clock
    record = Record(audit=audit, metrics=metrics, monitor=monitor, clock=clock)
    sessions: Sessions = TtlCache(size=_SESSIONS)
    authenticate = Authenticate(
        verifier=workspace.token_verifier(),
        principals=workspace.principals,
        revocations=workspace.revocations,
        api_keys=workspace.api_keys,
        sessions=sessions,
        cache_seconds=settings.auth_cache_seconds,
        clock=clock,
        external=ExternalIssuers(
            settings.trusted_issuers, leeway_seconds=settings.clock_skew_seconds
        ),
    )
    tokens = workspace.token_service()
    # Limits and lockouts shared by every gateway process, when a Redis is configured.
    redis_url = settings.redis_url
    shared = (
        connect(
            redis_url.get_secret_value(),
            timeout=settings.redis_timeout_seconds,
            connect_timeout=settings.redis_connect_timeout_seconds,
        )
        if redis_url
        else None
    )
    lockout = _lockout(workspace, shared)
    models = ModelCache(registry=workspace.registry, clock=clock)
    authorize = Authorize(authorizer=_policies(workspace), models=models, clock=clock)
    throttle = _throttle(workspace, shared)
    guard = (authenticate, authorize, throttle)
    return Pipelines(
        token=Pipeline([IssueToken(service=tokens, lockout=lockout)], record=record),
        revoke=Pipeline(
            [RevokeToken(service=tokens, lockout=lockout, sessions=sessions)], record=record
        ),
        introspect=Pipeline([IntrospectToken(service=tokens, lockout=lockout)], record=record),
        infer=Pipeline(
            [
                *guard,
                Validate(models=models),
                Infer(runner=runner),
                Harden(),
            ],
            record=record,
        ),
        describe=Pipeline([*guard, Describe(models=models)], record=record),
        metrics=Pipeline(guard, record=record),
        audit=Pipeline(guard, record=record),
        dp_query=Pipeline([*guard, AnswerQuery(engine=workspace.dp_engine())], record=record),
        admin=Pipeline([*guard, Administer()], record=record),
        backends=Backends(database=workspace.database, shared=shared, timeout=_READY_SECONDS),
    )
