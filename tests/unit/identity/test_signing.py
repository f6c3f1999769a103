"""Token-signing key rotation without refusing valid tokens."""

from __future__ import annotations

import pytest

from bastion.crypto import SigningKey
from bastion.errors import AuthError
from bastion.identity import Principal, SigningKeyring, TokenIssuer, TokenVerifier
from bastion.identity.signing import RETIRED_FOR_SECONDS

ANA = Principal(client_id="bcl_ana", name="ana", role="analyst")


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


def test_rotation_keeps_issued_tokens_valid_and_retires_old_keys(tmp_path):
    """After a rotation old tokens verify, new ones carry the new kid; old keys lapse."""
    clock = Clock()
    SigningKey.generate(tmp_path / "token-signing.pem")
    ring = SigningKeyring(current=tmp_path / "token-signing.pem", clock=clock)
    issuer = TokenIssuer(key=ring, issuer="https://x", audience="a", ttl_seconds=300, clock=clock)
    verifier = TokenVerifier(
        keys=ring, issuer="https://x", audience="a", leeway_seconds=0, clock=clock
    )
    before = issuer.issue(ANA, certificate_thumbprint=None).value.get_secret_value()
    old_kid = ring.current().kid
    new_kid = ring.rotate().kid
    after = issuer.issue(ANA, certificate_thumbprint=None).value.get_secret_value()
    assert new_kid != old_kid and set(ring.verification_keys()) == {old_kid, new_kid}
    for token in (before, after):
        verifier.verify(token, certificate_thumbprint=None)
    clock.now += RETIRED_FOR_SECONDS + 1
    ring.rotate()  # prunes keys past their window
    assert old_kid not in ring.verification_keys()
    with pytest.raises(AuthError):
        verifier.verify(before, certificate_thumbprint=None)
    assert (tmp_path / "token-signing.retired").stat().st_mode & 0o777 == 0o700


def test_a_gateway_trusts_a_key_rotated_in_by_another_process_at_once(tmp_path):
    """The verifier's keyring looks at the key folder as soon as it meets an unknown kid."""
    clock = Clock()
    SigningKey.generate(tmp_path / "token-signing.pem")
    gateway = SigningKeyring(current=tmp_path / "token-signing.pem", clock=clock)
    operator = SigningKeyring(current=tmp_path / "token-signing.pem", clock=clock)
    verifier = TokenVerifier(
        keys=gateway, issuer="https://x", audience="a", leeway_seconds=0, clock=clock
    )
    issuer = TokenIssuer(
        key=operator, issuer="https://x", audience="a", ttl_seconds=300, clock=clock
    )
    verifier.verify(issuer.issue(ANA, certificate_thumbprint=None).value.get_secret_value(),
                    certificate_thumbprint=None)  # fmt: skip
    operator.rotate()
    fresh = issuer.issue(ANA, certificate_thumbprint=None).value.get_secret_value()
    assert verifier.verify(fresh, certificate_thumbprint=None).client_id == ANA.client_id
    assert gateway.verification_key("no-such-kid") is None
