import json
import os

import pytest

from bastion.crypto.keys import SigningKey
from bastion.errors import IntegrityError, InvalidInput
from bastion.policy import ModelLabels
from bastion.registry.manifest import (
    MANIFEST_NAME,
    SignedManifest,
    build_manifest,
    sign_manifest,
    verify_manifest,
)


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "model"
    (folder / "weights").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx bytes" * 100)
    (folder / "weights" / "w.bin").write_bytes(bytes(range(256)))
    key = SigningKey.generate(tmp_path / "signer.pem")
    manifest = build_manifest(
        folder,
        name="fraud",
        owner="risk-team",
        created_at=1.0,
        labels=ModelLabels(risk_tier="high"),
    )
    signed = sign_manifest(manifest, key)
    (folder / MANIFEST_NAME).write_text(signed.to_json())
    return folder, key


def verify(folder, key):
    signed = SignedManifest.from_json((folder / MANIFEST_NAME).read_text())
    return verify_manifest(folder, signed, trusted={key.kid: key.public_key})


def test_a_signed_model_verifies_with_every_file_listed(model):
    """Both files are listed with their digests, and the manifest round-trips through JSON."""
    folder, key = model
    manifest = verify(folder, key)
    assert [f.path for f in manifest.files] == ["model.onnx", "weights/w.bin"]
    assert manifest.labels.risk_tier == "high" and manifest.owner == "risk-team"


@pytest.mark.parametrize("path", ["model.onnx", "weights/w.bin"])
def test_one_changed_byte_in_any_file_is_refused(model, path):
    """Flipping one byte of an artifact breaks verification, naming the file."""
    folder, key = model
    data = bytearray((folder / path).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / path).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=path):
        verify(folder, key)


def test_one_changed_byte_in_the_manifest_is_refused(model):
    """Changing the owner, a digest or the labels in the manifest breaks the signature."""
    folder, key = model
    text = (folder / MANIFEST_NAME).read_text()
    for old, new in (('"risk-team"', '"risk-tean"'), ('"high"', '"low"')):
        (folder / MANIFEST_NAME).write_text(text.replace(old, new))
        with pytest.raises(IntegrityError, match="signature"):
            verify(folder, key)


def test_added_missing_and_linked_files_are_refused(model):
    """An unlisted file, a removed file and a symbolic link are each refused."""
    folder, key = model
    (folder / "extra.py").write_text("import os")
    with pytest.raises(IntegrityError, match=r"extra\.py is not in the manifest"):
        verify(folder, key)
    (folder / "extra.py").unlink()
    os.symlink("/etc/passwd", folder / "weights" / "link")
    with pytest.raises(IntegrityError, match="symbolic link"):
        verify(folder, key)
    (folder / "weights" / "link").unlink()
    (folder / "weights" / "w.bin").unlink()
    with pytest.raises(IntegrityError, match="missing"):
        verify(folder, key)


def test_untrusted_signers_and_foreign_files_are_refused(model, tmp_path):
    """Another key's signature, garbage and escaping paths are refused."""
    folder, key = model
    other = SigningKey.generate(tmp_path / "other.pem")
    signed = SignedManifest.from_json((folder / MANIFEST_NAME).read_text())
    with pytest.raises(IntegrityError, match="not a trusted signer"):
        verify_manifest(folder, signed, trusted={other.kid: other.public_key})
    with pytest.raises(InvalidInput, match="manifest"):
        SignedManifest.from_json('{"format": "something else"}')
    body = json.loads((folder / MANIFEST_NAME).read_text())
    body["files"][0]["path"] = "../outside"
    escaping = SignedManifest.from_json(json.dumps(body))
    resigned = sign_manifest(escaping.manifest, key)
    with pytest.raises(IntegrityError, match="outside"):
        verify_manifest(folder, resigned, trusted={key.kid: key.public_key})


def test_registration_and_every_load_check_the_signed_manifest(
    tmp_path, database, blobs, digits_file
):
    """A signed model registers; a changed byte is refused; an untrusted signer stops loads."""
    import time

    from bastion.registry import ModelRegistry, OutputPolicy

    folder = tmp_path / "signed"
    folder.mkdir()
    (folder / "digits.onnx").write_bytes(digits_file.read_bytes())
    key = SigningKey.generate(tmp_path / "k.pem")
    signed = sign_manifest(build_manifest(folder, name="digits", owner="ml", created_at=0), key)
    trusted = {key.kid: key.public_key}
    registry = ModelRegistry(
        database=database, blobs=blobs, clock=time.time, trusted_signers=lambda: trusted
    )
    policy = OutputPolicy()
    model = registry.register(
        folder / "digits.onnx", name="d", version=None, output_policy=policy, manifest=signed
    )
    assert model.signer == key.kid and registry.load_artifact(model) == digits_file.read_bytes()
    data = bytearray(digits_file.read_bytes())
    data[-1] ^= 1
    (folder / "digits.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match"):
        registry.register(
            folder / "digits.onnx", name="d", version=None, output_policy=policy, manifest=signed
        )
    trusted.clear()  # the signer is no longer trusted: its models stop loading
    with pytest.raises(IntegrityError):
        registry.load_artifact(registry.get("d"))


def test_a_privacy_claim_is_signed_with_the_manifest(tmp_path):
    """A DP-SGD claim travels in the signed body; changing it breaks the signature."""
    from bastion.registry.claims import PrivacyClaim

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"weights")
    claim = PrivacyClaim(
        epsilon=3.0, delta=1e-5, noise_multiplier=1.2, sample_rate=0.01, steps=900, max_grad_norm=1
    )
    key = SigningKey.generate(tmp_path / "key.json")
    manifest = build_manifest(folder, name="m", owner="o", created_at=1.0, privacy=claim)
    signed = SignedManifest.from_json(sign_manifest(manifest, key).to_json())
    assert signed.manifest.privacy == claim
    verify_manifest(folder, signed, trusted={key.kid: key.public_key})
    forged = sign_manifest(manifest, key).to_json().replace('"epsilon": 3.0', '"epsilon": 0.5')
    with pytest.raises(IntegrityError):
        verify_manifest(folder, SignedManifest.from_json(forged), trusted={key.kid: key.public_key})
