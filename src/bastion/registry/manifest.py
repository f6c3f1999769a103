"""Signed model manifests: what a model version is, file by file, signed with Ed25519.

A manifest lists every file of a model (relative path, size, SHA-256) with its metadata —
name, owner, risk tier, data classification, and the robustness claim when there is one —
and is signed by the owner of a signer key over its canonical JSON (sorted keys, no
spaces). Verification refuses, with one error naming the first problem: an untrusted
signer, a bad signature, a missing, changed or unlisted file, a symbolic link, and a path
that leaves the model's folder.

>>> import tempfile
>>> from pathlib import Path
>>> from bastion.crypto.keys import SigningKey
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "model.onnx").write_bytes(b"weights")
>>> key = SigningKey.generate(folder.parent / f"{folder.name}-signer.pem")
>>> signed = sign_manifest(build_manifest(folder, name="m", owner="ml-team", created_at=0), key)
>>> verify_manifest(folder, signed, trusted={key.kid: key.public_key}).files[0].path
'model.onnx'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from bastion.crypto.keys import SigningKey, b64url, b64url_decode, load_public_jwk
from bastion.errors import ConfigError, CryptoError, IntegrityError, InvalidInput
from bastion.policy import ModelLabels
from bastion.registry.claims import PrivacyClaim, RobustnessClaim

FORMAT = "bastion-manifest/1"
MANIFEST_NAME = "manifest.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """One file of a model: its path inside the model's folder, size and SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """Everything a signature covers."""

    name: str
    owner: str
    files: tuple[FileDigest, ...]
    labels: ModelLabels
    robustness: RobustnessClaim | None
    created_at: float
    privacy: PrivacyClaim | None = None

    def __post_init__(self) -> None:
        # One spelling per value, so that a manifest read back signs the same bytes.
        object.__setattr__(self, "created_at", float(self.created_at))

    def payload(self) -> bytes:
        """The canonical bytes that are signed."""
        body = {
            "format": FORMAT,
            "name": self.name,
            "owner": self.owner,
            "files": [vars(f) for f in self.files],
            "risk_tier": self.labels.risk_tier,
            "classification": self.labels.classification,
            "robustness": self.robustness.to_json() if self.robustness else None,
            "created_at": self.created_at,
        }
        if self.privacy is not None:  # absent, not null: older manifests sign the same bytes
            body["privacy"] = self.privacy.to_json()
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class SignedManifest:
    """A manifest, the key id of its signer and the Ed25519 signature."""

    manifest: Manifest
    signer: str
    signature: bytes

    def to_json(self) -> str:
        """The manifest file's text."""
        body = json.loads(self.manifest.payload())
        body["signature"] = {"alg": "EdDSA", "kid": self.signer, "sig": b64url(self.signature)}
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SignedManifest:
        """Read a manifest file (its signature is checked by :func:`verify_manifest`).

        Raises:
            InvalidInput: it is not a Bastion manifest.
        """
        try:
            body = json.loads(text)
            if body.pop("format") != FORMAT:
                raise ValueError
            signature = body.pop("signature")
            claim = body["robustness"]
            manifest = Manifest(
                name=str(body["name"]),
                owner=str(body["owner"]),
                files=tuple(
                    FileDigest(str(f["path"]), int(f["size"]), str(f["sha256"]))
                    for f in body["files"]
                ),
                labels=ModelLabels(
                    risk_tier=body["risk_tier"], classification=body["classification"]
                ),
                robustness=RobustnessClaim.from_json(claim) if claim else None,
                created_at=float(body["created_at"]),
                privacy=PrivacyClaim.from_json(body["privacy"]) if "privacy" in body else None,
            )
            return cls(manifest, str(signature["kid"]), b64url_decode(str(signature["sig"])))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidInput(f"Not a {FORMAT} manifest.") from None


def build_manifest(
    root: Path,
    *,
    name: str,
    owner: str,
    created_at: float,
    labels: ModelLabels | None = None,
    robustness: RobustnessClaim | None = None,
    privacy: PrivacyClaim | None = None,
) -> Manifest:
    """List and hash every file under ``root`` (the manifest file itself excepted).

    Raises:
        InvalidInput: the folder holds a symbolic link, or no files.
    """
    files = tuple(_digest(root, path) for path in _files(root))
    if not files:
        raise InvalidInput(f"{root} holds no files to sign.")
    return Manifest(name, owner, files, labels or ModelLabels(), robustness, created_at, privacy)


def sign_manifest(manifest: Manifest, key: SigningKey) -> SignedManifest:
    """Sign ``manifest`` with ``key``."""
    return SignedManifest(manifest, key.kid, key.sign(manifest.payload()))


def verify_manifest(
    root: Path, signed: SignedManifest, *, trusted: Mapping[str, Ed25519PublicKey]
) -> Manifest:
    """Check the signature and every file; return the manifest.

    Raises:
        IntegrityError: untrusted signer, bad signature, or a file missing, changed, added
            or escaping the folder.
    """
    verify_signature(signed, trusted=trusted)
    listed = {f.path: f for f in signed.manifest.files}
    for entry in signed.manifest.files:
        if PurePosixPath(entry.path).is_absolute() or ".." in PurePosixPath(entry.path).parts:
            raise IntegrityError(f"The manifest lists {entry.path!r}, outside the model's folder.")
    try:
        present = {path.relative_to(root).as_posix(): path for path in _files(root)}
    except InvalidInput as exc:
        raise IntegrityError(exc.public_message) from None
    unlisted = sorted(present.keys() - listed.keys())
    if unlisted:
        raise IntegrityError(f"{unlisted[0]} is not in the manifest.")
    for path, entry in listed.items():
        if path not in present:
            raise IntegrityError(f"{path} is in the manifest but missing.")
        if _digest(root, present[path]) != entry:
            raise IntegrityError(f"{path} does not match its digest in the manifest.")
    return signed.manifest


def verify_signature(
    signed: SignedManifest, *, trusted: Mapping[str, Ed25519PublicKey]
) -> Manifest:
    """Check only that a trusted signer signed this manifest; return it.

    Raises:
        IntegrityError: the signer is not trusted or the signature does not verify.
    """
    public = trusted.get(signed.signer)
    if public is None:
        raise IntegrityError(
            f"The manifest is signed by {signed.signer[:16]}, which is not a trusted signer."
        )
    try:
        public.verify(signed.signature, signed.manifest.payload())
    except InvalidSignature:
        raise IntegrityError("The manifest's signature does not verify.") from None
    return signed.manifest


def read_signer(path: Path) -> tuple[str, Ed25519PublicKey]:
    """A signer's key id and public key, from the ``.pub.json`` that `model keygen` wrote.

    Raises:
        InvalidInput: the file is not an Ed25519 public JWK.
    """
    try:
        jwk = json.loads(path.read_text())
        return str(jwk["kid"]), load_public_jwk(jwk)
    except (OSError, ValueError, KeyError, TypeError, CryptoError):
        raise InvalidInput(f"{path} is not a public JWK from `bastion model keygen`.") from None


def load_trusted(folder: Path) -> dict[str, Ed25519PublicKey]:
    """The trusted signers: every ``*.pub.json`` public JWK in ``folder`` (none if it is absent).

    Raises:
        ConfigError: a file there is not an Ed25519 public JWK.
    """
    paths = sorted(folder.glob("*.pub.json")) if folder.is_dir() else []
    try:
        return dict(read_signer(path) for path in paths)
    except InvalidInput as exc:
        raise ConfigError(exc.public_message) from None


def _files(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise InvalidInput(
                f"{path.relative_to(root)} is a symbolic link; copy the file instead."
            )
        if path.is_file() and path.relative_to(root).as_posix() != MANIFEST_NAME:
            found.append(path)
    return found


def _digest(root: Path, path: Path) -> FileDigest:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return FileDigest(path.relative_to(root).as_posix(), size, digest.hexdigest())
