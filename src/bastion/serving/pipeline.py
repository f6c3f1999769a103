"""The request pipelines. This module is the only place where the order of stages lives.

An inference request passes, in order: authenticate → authorize → throttle →
validate → infer → harden, and is then recorded whatever happened (docs/pipeline.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bastion.audit import AuditEvent
from bastion.errors import BastionError
from bastion.identity import Lockout
from bastion.identity.external import ExternalIssuers
from bastion.monitor import GatewayMetrics, Monitor
from bastion.policy import ReloadingAuthorizer
from bastion.serving.cache import ModelCache, TtlCache
from bastion.serving.call import Call
from bastion.serving.limits import RateLimiter, TokenBucketLimiter
from bastion.serving.redis_limits import RedisTokenBucketLimiter
from bastion.serving.runner import Runner
from bastion.serving.stages.authenticate import Authenticate, Sessions
from bastion.serving.stages.authorize import Authorize
from bastion.serving.stages.describe import Describe
from bastion.serving.stages.dp_query import AnswerQuery
from bastion.serving.stages.harden import Harden
from bastion.serving.stages.infer import Infer
from bastion.serving.stages.oauth import IntrospectToken, IssueToken, RevokeToken
from bastion.serving.stages.record import Record
from bastion.serving.stages.throttle import Throttle
from bastion.serving.stages.validate import Validate
from bastion.workspace import Workspace

Stage = Callable[[Call], Awaitable[None]]
_SESSIONS = 100_000
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


def _limiter(workspace: Workspace) -> RateLimiter:
    settings = workspace.settings
    if settings.redis_url is None:
        return TokenBucketLimiter(
            rate=settings.rate_per_second, burst=settings.rate_burst, clock=workspace.clock
        )
    # One bucket per principal for every gateway of this workspace (its audit key names it).
    return RedisTokenBucketLimiter.from_url(
        settings.redis_url.get_secret_value(),
        rate=settings.rate_per_second,
        burst=settings.rate_burst,
        prefix=f"bastion:{workspace.audit.origin}:rate:",
    )


@dataclass(frozen=True)
class Pipelines:
    """One pipeline per kind of route."""

    token: Pipeline
    revoke: Pipeline
    introspect: Pipeline
    infer: Pipeline
    describe: Pipeline
    metrics: Pipeline
    audit: Pipeline
    dp_query: Pipeline


def build_pipelines(
    workspace: Workspace, *, metrics: GatewayMetrics, monitor: Monitor, runner: Runner
) -> Pipelines:
    """Wire the stages from the workspace's components."""
    settings, clock = workspace.settings, workspace.clock
    record = Record(audit=workspace.audit, metrics=metrics, monitor=monitor, clock=clock)
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
            settings.trusted_issuers, leeway_seconds=settings.clock_skew_seconds, clock=clock
        ),
    )
    tokens = workspace.token_service()
    lockout = Lockout(
        limit=settings.lockout_failures,
        window=settings.lockout_seconds,
        lock_seconds=settings.lockout_seconds,
        clock=clock,
    )
    models = ModelCache(registry=workspace.registry, clock=clock)
    authorize = Authorize(authorizer=_policies(workspace), models=models, clock=clock)
    throttle = Throttle(limiter=_limiter(workspace))
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
    )
