"""The authenticate stage's caches: what applies at once, and what within the cache time.

Changes through this process apply at once; changes by another process (a second Workspace
on the same database stands for the CLI or another gateway) within ``auth_cache_seconds``.
"""

from __future__ import annotations

import pytest

from bastion.errors import AuthError
from bastion.identity import RevocationList, TokenIssuer, TokenVerifier
from bastion.serving.cache import TtlCache
from bastion.serving.call import Call, Target
from bastion.serving.stages.authenticate import Authenticate
from bastion.workspace import Workspace

T0 = 1_800_000_000.0
CACHE = 2.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def no_body() -> bytes:
    raise AssertionError("authenticate never reads the body")


def call(token: str) -> Call:
    return Call(route="/v2/models/{name}", target=Target("describe", "digits"),
                client_ip="10.0.0.7", authorization=f"Bearer {token}",
                content_type="application/json", read_body=no_body)  # fmt: skip


@pytest.fixture
def gateway(make_workspace):
    """A workspace, a clock, an authenticate stage with the production cache wiring, a minter."""
    ws = make_workspace()
    clock = Clock()
    settings = ws.settings
    stage = Authenticate(
        verifier=TokenVerifier(keys=ws.signing_keys, issuer=settings.issuer,
                               audience=settings.audience, leeway_seconds=30, clock=clock),
        principals=ws.principals,
        revocations=RevocationList(database=ws.database, clock=clock, cache_seconds=CACHE),
        api_keys=ws.api_keys,
        sessions=TtlCache(size=1000),
        cache_seconds=CACHE,
        clock=clock,
    )  # fmt: skip
    issuer = TokenIssuer(key=ws.signing_keys, issuer=settings.issuer, audience=settings.audience,
                         ttl_seconds=300, clock=clock)  # fmt: skip
    return ws, clock, stage, issuer


def mint(issuer: TokenIssuer, who) -> str:
    return issuer.issue(who.principal, certificate_thumbprint=None).value.get_secret_value()


@pytest.mark.anyio
async def test_a_disable_through_this_process_applies_to_the_next_request(gateway):
    """Cached token, disabled through the same PrincipalStore: refused with the clock unmoved."""
    ws, _, stage, issuer = gateway
    new = ws.principals.add("svc", role="analyst", attributes={})
    token = mint(issuer, new)
    for _ in range(2):
        await stage(call(token))
    ws.principals.disable("svc")
    with pytest.raises(AuthError) as caught:
        await stage(call(token))
    assert caught.value.detail == "principal disabled"


@pytest.mark.anyio
async def test_a_disable_by_another_process_applies_within_the_cache_time(gateway):
    """A token first seen just before the principal cache expires lives no longer than it."""
    ws, clock, stage, issuer = gateway
    new = ws.principals.add("svc", role="analyst", attributes={})
    first, second = mint(issuer, new), mint(issuer, new)
    await stage(call(first))  # the principal is read at T0 and remembered until T0 + CACHE
    clock.now = T0 + CACHE - 0.1
    await stage(call(second))  # a new token of a remembered principal: no database read
    other = Workspace(settings=ws.settings)  # the CLI, or another gateway
    try:
        other.principals.disable("svc")
    finally:
        other.close()
    clock.now = T0 + CACHE + 0.01  # within auth_cache_seconds of the read, not of the token
    for token in (first, second):
        with pytest.raises(AuthError):
            await stage(call(token))


@pytest.mark.anyio
async def test_a_revocation_at_another_gateway_applies_within_the_cache_time(gateway):
    """A token verified against a revocation list copy lives no longer than that copy."""
    ws, clock, stage, issuer = gateway
    new = ws.principals.add("svc", role="analyst", attributes={})
    first, second = mint(issuer, new), mint(issuer, new)
    await stage(call(first))  # the revocation list is copied at T0
    clock.now = T0 + CACHE - 0.1
    await stage(call(second))
    elsewhere = RevocationList(database=ws.database, clock=clock, cache_seconds=CACHE)
    verified = TokenVerifier(keys=ws.signing_keys, issuer=ws.settings.issuer,
                             audience=ws.settings.audience, leeway_seconds=30,
                             clock=clock).verify(second, certificate_thumbprint=None)  # fmt: skip
    elsewhere.revoke(verified.jti, expires_at=verified.expires_at)
    clock.now = T0 + CACHE + 0.01
    await stage(call(first))
    with pytest.raises(AuthError) as caught:
        await stage(call(second))
    assert caught.value.detail == "revoked token"


@pytest.mark.anyio
async def test_an_api_key_is_checked_in_the_database_every_time(gateway):
    """API keys are never cached: revoked by another process, the next use is refused."""
    ws, _, stage, _ = gateway
    ws.principals.add("svc", role="analyst", attributes={})
    record, secret = ws.api_keys.create("svc", actions=("infer",), models=("*",), days=1)
    await stage(call(secret.get_secret_value()))
    other = Workspace(settings=ws.settings)
    try:
        other.api_keys.revoke(record.key_id)
    finally:
        other.close()
    with pytest.raises(AuthError):
        await stage(call(secret.get_secret_value()))


@pytest.mark.anyio
async def test_an_api_key_of_a_principal_disabled_elsewhere_is_refused_at_once(gateway):
    """The key's principal is read with the key: disabled by another process, refused next."""
    ws, _, stage, _ = gateway
    ws.principals.add("svc", role="analyst", attributes={})
    _, secret = ws.api_keys.create("svc", actions=("infer",), models=("*",), days=1)
    await stage(call(secret.get_secret_value()))
    other = Workspace(settings=ws.settings)
    try:
        other.principals.disable("svc")
    finally:
        other.close()
    with pytest.raises(AuthError) as caught:
        await stage(call(secret.get_secret_value()))
    assert caught.value.detail == "principal disabled"
