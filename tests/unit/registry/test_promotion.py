"""Stages: promotion gates, the default version, archiving."""

import time

import pytest

from bastion.crypto.keys import SigningKey
from bastion.errors import InvalidInput
from bastion.policy import ModelLabels
from bastion.registry import ModelRegistry, OutputPolicy, RobustnessClaim
from bastion.registry.manifest import build_manifest, sign_manifest


@pytest.fixture
def signed(tmp_path, database, blobs, digits_file):
    """A registry trusting one signer, and a function registering signed or plain versions."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "digits.onnx").write_bytes(digits_file.read_bytes())
    key = SigningKey.generate(tmp_path / "k.pem")
    manifest = sign_manifest(build_manifest(folder, name="d", owner="ml", created_at=0), key)
    trusted = {key.kid: key.public_key}
    registry = ModelRegistry(
        database=database, blobs=blobs, clock=time.time, trusted_signers=lambda: trusted
    )

    def register(*, sign=True, **extra):
        return registry.register(
            folder / "digits.onnx",
            name="d",
            version=None,
            output_policy=OutputPolicy(),
            manifest=manifest if sign else None,
            **extra,
        )

    return registry, register, trusted


def test_a_signed_version_is_promoted_and_becomes_the_default(signed):
    registry, register, _ = signed
    first, second = register(), register()
    assert registry.get("d").version == second.version  # nothing promoted: the newest
    assert first.labels.stage == "staging"
    registry.promote(first)
    assert registry.get("d").version == first.version
    register()  # a new registration does not change what production is
    assert registry.get("d").version == first.version
    registry.promote(second)
    stages = {m.version: m.labels.stage for m in registry.list()}
    assert stages == {"1": "archived", "2": "production", "3": "staging"}


def test_unsigned_and_untrusted_versions_stay_out_of_production(signed):
    registry, register, trusted = signed
    unsigned = register(sign=False)
    with pytest.raises(InvalidInput, match="no signed manifest"):
        registry.promote(unsigned)
    version = register()
    trusted.clear()  # the signer is no longer trusted
    with pytest.raises(InvalidInput, match="no longer verifies"):
        registry.promote(version)
    assert {m.labels.stage for m in registry.list()} == {"staging"}


def test_a_high_risk_version_needs_a_robustness_report(signed):
    registry, register, _ = signed
    high = ModelLabels(risk_tier="high")
    bare = register(labels=high)
    assert registry.promotion_problems(bare) == [
        "a high-risk model needs a robustness report (--robustness)"
    ]
    claim = RobustnessClaim.from_json(
        {
            "clean_accuracy": 0.9,
            "worst": [{"norm": "linf", "epsilon": 0.1, "robust_accuracy": 0.5}],
            "verdict": ["robust enough at linf 0.1"],
            "samples": 200,
            "dataset": "digits",
        }
    )
    assert registry.promotion_problems(register(labels=high, robustness=claim)) == []
