"""The model registry: immutable versions, artifacts encrypted at rest."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from numpy.typing import NDArray

from bastion.crypto import BlobStore
from bastion.errors import Conflict, CryptoError, IntegrityError, InvalidInput, NotFound
from bastion.policy import UNLABELLED, ModelLabels
from bastion.registry.artifacts import (
    check_estimator_file,
    check_onnx,
    external_data,
    file_digests,
    model_file,
    sha256,
)
from bastion.registry.claims import RobustnessClaim
from bastion.registry.input_policy import InputPolicy
from bastion.registry.manifest import SignedManifest, verify_manifest, verify_signature
from bastion.registry.output_policy import OutputPolicy
from bastion.registry.scan import scan_bytes
from bastion.registry.signature import ModelSignature
from bastion.registry.upstream import UPSTREAM_FORMAT, UpstreamEndpoint
from bastion.sandbox.models import ONNX_FORMAT, OnnxBundle, format_of, load
from bastion.storage import Database, tables
from bastion.types import Clock

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ModelVersion:
    """One immutable, registered version of a model."""

    name: str
    version: str
    format: str
    sha256: str
    signature: ModelSignature
    output_policy: OutputPolicy
    created_at: float
    input_policy: InputPolicy
    robustness: RobustnessClaim | None
    labels: ModelLabels
    signer: str | None = None  # key id of the manifest's signer, when registered signed

    @property
    def ref(self) -> str:
        """``name@version``, as written in audit records."""
        return f"{self.name}@{self.version}"


class ModelRegistry:
    """Registers ONNX models and scikit-learn estimators; hands their bytes to the runner."""

    def __init__(
        self,
        *,
        database: Database,
        blobs: BlobStore,
        clock: Clock,
        trusted_signers: Callable[[], Mapping[str, Ed25519PublicKey]] = dict,
        load_check: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self._db = database
        self._blobs = blobs
        self._clock = clock
        self._trusted = trusted_signers
        # Proves a new model loads, and reports an estimator's signature; the workspace
        # passes a sandboxed check (Jail.check_loads).
        self._load_check = load_check or _load_in_process

    def register(
        self,
        path: Path,
        *,
        name: str,
        version: str | None,
        output_policy: OutputPolicy,
        input_policy: InputPolicy | None = None,
        reference: NDArray[Any] | None = None,
        robustness: RobustnessClaim | None = None,
        labels: ModelLabels | None = None,
        manifest: SignedManifest | None = None,
    ) -> ModelVersion:
        """Check a model file, encrypt it and record a new immutable version.

        The format is told by content: an ONNX model — its external data files, confined
        to its folder, are stored with it as one :class:`OnnxBundle` — or a scikit-learn
        estimator saved with skops, pickle or joblib, which must scan clean (every type its
        schema names, every global the pickle imports, on the scanner's allow-list) before
        it is even loaded — in the sandbox.

        Raises:
            InvalidInput: the name or version is malformed, or the file is not a usable
                ONNX model (with its external data in its folder) or a clean, servable
                estimator.
            IntegrityError: a file is not in the signed manifest as it is now.
            Conflict: this version exists already.

        ``reference`` is a sample of typical inputs (rows x features), stored encrypted
        with the model; the gateway compares live inputs with it to detect drift.
        ``input_policy`` is the sanitizer the validate stage applies; ``robustness`` is
        the summary of the version's robustness evaluation; ``labels`` (risk tier, data
        classification) are what policies decide on. With a ``manifest`` (the signed
        manifest of the file's folder), registration verifies it against the trusted
        signers and keeps it: every load verifies its signature again.
        """
        _check_names(name, version)
        artifact = path.read_bytes()
        if manifest is not None:
            self._check_manifest(path, artifact, manifest)
        model_format = format_of(artifact)
        if model_format != ONNX_FORMAT:
            signature = self._check_estimator(path.name, artifact)
        else:
            signature, locations = check_onnx(artifact, path)
            if locations:
                data = external_data(path, locations, manifest)
                artifact = OnnxBundle(model=artifact, data=data).pack()
            self._load_check(artifact)
        row = self._row(name, artifact, signature, (output_policy, input_policy), labels) | {
            "format": model_format,
            "robustness": robustness.to_json() if robustness is not None else None,
            "signer": manifest.signer if manifest is not None else None,
        }
        extras = {}
        if reference is not None:
            extras["model-reference"] = _npy(reference)
        if manifest is not None:
            extras["model-manifest"] = manifest.to_json().encode()
        return self._store(row, version, artifact, extras)

    def register_upstream(
        self,
        endpoint: UpstreamEndpoint,
        *,
        name: str,
        version: str | None,
        output_policy: OutputPolicy,
        input_policy: InputPolicy | None = None,
        labels: ModelLabels | None = None,
    ) -> ModelVersion:
        """Record a model served by another V2 server; its signature is read from it.

        Raises:
            InvalidInput: a name is malformed or the upstream's metadata is not V2.
            BackendError: the upstream cannot be reached over mutual TLS.
            Conflict: this version exists already.
        """
        _check_names(name, version)
        signature = endpoint.read_signature()
        config = endpoint.to_json()
        row = self._row(name, config, signature, (output_policy, input_policy), labels) | {
            "format": UPSTREAM_FORMAT,
            "robustness": None,
            "signer": None,
        }
        return self._store(row, version, config, {})

    def promote(self, model: ModelVersion) -> ModelVersion:
        """Make ``model`` the production version of its name; the previous one is archived.

        Raises:
            InvalidInput: a promotion check fails; the message lists every failure.
        """
        problems = self.promotion_problems(model)
        if problems:
            raise InvalidInput(f"{model.ref} cannot be promoted: {'; '.join(problems)}.")
        models = tables.models
        same_name = models.c.name == model.name
        with self._db.transaction() as db:
            db.execute(
                models.update()
                .where(same_name, models.c.stage == "production")
                .values(stage="archived")
            )
            db.execute(
                models.update()
                .where(same_name, models.c.version == model.version)
                .values(stage="production")
            )
        return self.get(model.name, model.version)

    def promotion_problems(self, model: ModelVersion) -> list[str]:
        """What stops ``model`` from going to production (empty when nothing does).

        A production version must carry a manifest signed by a signer trusted now, whose
        digests and signature still verify; its artifact must scan clean; a high-risk
        version needs a robustness report.
        """
        problems = []
        if model.signer is None:
            problems.append("it has no signed manifest (sign its folder, then register it)")
        else:
            try:
                artifact = self.load_artifact(model)
            except (IntegrityError, CryptoError):
                problems.append("its signature or digest no longer verifies")
            else:
                report = scan_bytes(model_file(artifact), name=f"{model.ref}.{model.format}")
                if not report.is_safe:
                    problems.append("its artifact does not scan clean (`bastion scan`)")
        if model.labels.risk_tier == "high" and model.robustness is None:
            problems.append("a high-risk model needs a robustness report (--robustness)")
        return problems

    def load_upstream(self, model: ModelVersion) -> UpstreamEndpoint:
        """The endpoint of an upstream version (decrypted, digest checked).

        Raises:
            IntegrityError: the stored endpoint does not match its digest.
        """
        return UpstreamEndpoint.from_json(self.load_artifact(model))

    def default_versions(self) -> list[ModelVersion]:
        """The version each registered name answers with when no version is named."""
        return [self.get(name) for name in sorted({model.name for model in self.list()})]

    def _row(
        self,
        name: str,
        artifact: bytes,
        signature: ModelSignature,
        policies: tuple[OutputPolicy, InputPolicy | None],
        labels: ModelLabels | None,
    ) -> dict[str, Any]:
        """The columns every format fills the same way."""
        output_policy, input_policy = policies
        labels = labels or UNLABELLED
        return {
            "name": name,
            "sha256": sha256(artifact),
            "signature": signature.to_json(),
            "output_policy": output_policy.to_json(),
            "input_policy": (input_policy or InputPolicy()).to_json(),
            "risk_tier": labels.risk_tier,
            "classification": labels.classification,
            "created_at": self._clock(),
        }

    def _store(
        self, row: dict[str, Any], version: str | None, artifact: bytes, extras: dict[str, bytes]
    ) -> ModelVersion:
        """Number the version, store its artifact and extras, then its row."""
        name = row["name"]
        with self._db.transaction() as db:
            query = sa.select(tables.models.c.version).where(tables.models.c.name == name)
            taken = db.execute(query).scalars().all()
        version = version or str(1 + max((int(v) for v in taken if v.isdigit()), default=0))
        immutable = Conflict(f"{name}@{version} exists already; versions are immutable.")
        if version in taken:
            raise immutable
        # The artifact goes first, so a version row never points at nothing; a racing
        # registration of the same version fails on the artifact's unique name.
        try:
            self._blobs.put("model", f"{name}@{version}", artifact)
        except Conflict:
            raise immutable from None
        for kind, data in extras.items():
            self._blobs.put(kind, f"{name}@{version}", data)
        with self._db.transaction() as db:
            db.execute(tables.models.insert().values(version=version, **row))
        return self.get(name, version)

    def list(self) -> list[ModelVersion]:
        """Every registered version, by name then registration order."""
        with self._db.transaction() as db:
            rows = db.execute(
                sa.select(*_METADATA).order_by(tables.models.c.name, tables.models.c.id)
            )
            return [_version(row) for row in rows]

    def get(self, name: str, version: str | None = None) -> ModelVersion:
        """A version of a model; when ``version`` is None, the default one.

        The default is the production version; a model never promoted has none, and then
        its newest version is the default (the development flow). Once a version is
        promoted, registering new ones does not change what the default is.

        Raises:
            NotFound: no such model or version.
        """
        models = tables.models
        query = sa.select(*_METADATA).where(models.c.name == name)
        if version is not None:
            query = query.where(models.c.version == version)
        promoted_first = sa.case((models.c.stage == "production", 0), else_=1)
        with self._db.transaction() as db:
            row = db.execute(query.order_by(promoted_first, models.c.id.desc()).limit(1)).first()
        if row is None:
            what = f"{name}@{version}" if version else name
            raise NotFound(f"Model {what} is not registered.")
        return _version(row)

    def load_reference(self, ref: str) -> NDArray[Any] | None:
        """The reference input sample stored with model version ``ref`` (name@version)."""
        try:
            data = self._blobs.get("model-reference", ref)
        except NotFound:
            return None
        array: NDArray[Any] = np.load(io.BytesIO(data), allow_pickle=False)
        return array

    def load_artifact(self, model: ModelVersion) -> bytes:
        """Decrypt the artifact (in memory only) and check it is the registered one.

        Raises:
            IntegrityError: the decrypted bytes do not match the recorded digest.
            CryptoError: the ciphertext was tampered with or the key is wrong.
        """
        artifact = self._blobs.get("model", model.ref)
        if sha256(artifact) != model.sha256:
            raise IntegrityError(detail=f"digest mismatch for {model.ref}")
        if model.signer is not None:
            # Signed versions load only while their signer is trusted.
            stored = SignedManifest.from_json(self._blobs.get("model-manifest", model.ref).decode())
            manifest = verify_signature(stored, trusted=self._trusted())
            if not file_digests(artifact) <= {f.sha256 for f in manifest.files}:
                raise IntegrityError(detail=f"{model.ref} is not in its signed manifest")
        return artifact

    def _check_estimator(self, name: str, artifact: bytes) -> ModelSignature:
        """Scan a skops file or a pickle, then load it (sandboxed) for its signature."""
        check_estimator_file(name, artifact)
        reported = self._load_check(artifact)  # InvalidInput when it does not load
        try:
            return ModelSignature.from_json(json.loads(reported))
        except (ValueError, KeyError, TypeError):
            raise InvalidInput("The estimator reported no usable signature.") from None

    def _check_manifest(self, path: Path, artifact: bytes, manifest: SignedManifest) -> None:
        """The manifest of the file's folder must verify and list this very file."""
        verify_manifest(path.parent, manifest, trusted=self._trusted())
        digest = sha256(artifact)
        if not any(f.path == path.name and f.sha256 == digest for f in manifest.manifest.files):
            raise IntegrityError(f"{path.name} is not listed at the top of its signed manifest.")


_METADATA = [c for c in tables.models.c if c.name != "id"]


def _npy(reference: NDArray[Any]) -> bytes:
    sample = np.asarray(reference, dtype=np.float64)
    if sample.ndim != 2 or len(sample) < 2:  # noqa: PLR2004
        raise InvalidInput("The reference sample must be a 2-D array (rows x features).")
    buffer = io.BytesIO()
    np.save(buffer, sample, allow_pickle=False)
    return buffer.getvalue()


def _check_names(name: str, version: str | None) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"Model name {name!r} is not allowed; use letters, digits, . _ -")
    if version is not None and not _VERSION.fullmatch(version):
        raise InvalidInput(f"Version {version!r} is not allowed; use letters, digits, . _ -")


def _load_in_process(artifact: bytes) -> bytes:
    try:
        return load(artifact).signature
    except Exception:  # the runtimes raise their own untyped errors
        raise InvalidInput("The model's runtime cannot load it.") from None


def _version(row: sa.Row[tuple[object, ...]]) -> ModelVersion:
    return ModelVersion(
        name=row.name,
        version=row.version,
        format=row.format,
        sha256=row.sha256,
        signature=ModelSignature.from_json(row.signature),
        output_policy=OutputPolicy.from_json(row.output_policy),
        created_at=row.created_at,
        input_policy=InputPolicy.from_json(row.input_policy),
        robustness=RobustnessClaim.from_json(row.robustness) if row.robustness else None,
        signer=row.signer,
        labels=ModelLabels(
            risk_tier=row.risk_tier or "unassessed",
            classification=row.classification or "internal",
            stage=row.stage,
        ),
    )
