"""The composition root: a workspace folder and the components built from Settings.

>>> import tempfile, pathlib
>>> from bastion.settings import Settings
>>> from bastion.workspace import Workspace
>>> home = pathlib.Path(tempfile.mkdtemp()) / "ws"
>>> ws = Workspace.create(Settings(home=home, passphrase="a doctest passphrase"), force=False)
>>> ws.audit.verify().size
0
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bastion.audit import AuditLog
from bastion.crypto import (
    BlobStore,
    CertificatePaths,
    KekBackend,
    Keyring,
    SigningKey,
    create_local_pki,
)
from bastion.crypto.kms import LocalKms, Pkcs11Kms
from bastion.errors import ConfigError, Conflict
from bastion.identity import (
    ApiKeyStore,
    PrincipalStore,
    RevocationList,
    SigningKeyring,
    TokenIssuer,
    TokenService,
    TokenVerifier,
)
from bastion.identity.assertions import ClientAssertions
from bastion.policy import BASELINE_POLICY, CedarAuthorizer, Guard
from bastion.privacy import MaskKeys, Reidentifier, TokenVault
from bastion.privacy.dp import BudgetLedger, DatasetStore, DpEngine
from bastion.privacy.vault import KEY_BYTES as VAULT_KEY_BYTES
from bastion.registry import ModelRegistry
from bastion.registry.manifest import load_trusted
from bastion.sandbox import Jail, SandboxLimits
from bastion.settings import Settings
from bastion.storage import Database
from bastion.types import Clock

ROOT_KEYRING = "root"
_TLS_HOSTS = ("localhost", "127.0.0.1", "::1")
_CONFIG_TEMPLATE = """\
# Bastion workspace settings. BASTION_* environment variables override them,
# and command-line flags override both. See docs/configuration.md.
host = "127.0.0.1"
port = 8443
token_ttl_seconds = 300
# database_url = "postgresql+psycopg://bastion@127.0.0.1:5432/bastion"
"""


PrivacyKey = Literal["pseudonym-key", "fpe-key", "vault-key"]


@dataclass(frozen=True)
class WorkspacePaths:
    """Where a workspace keeps each of its files."""

    home: Path

    @property
    def config(self) -> Path:
        """The workspace's bastion.toml."""
        return self.home / "bastion.toml"

    @property
    def keystore(self) -> Path:
        """The local KMS: key-encryption keys sealed under the passphrase (mode 0600)."""
        return self.home / "keys" / "local-kms.json"

    @property
    def signing_key(self) -> Path:
        """The Ed25519 token-signing key (mode 0600)."""
        return self.home / "keys" / "token-signing.pem"

    @property
    def audit_key(self) -> Path:
        """The Ed25519 key that signs audit checkpoints (mode 0600)."""
        return self.home / "keys" / "audit-signing.pem"

    @property
    def tls(self) -> CertificatePaths:
        """The local CA and the server certificate."""
        return CertificatePaths.under(self.home / "tls")

    @property
    def policies(self) -> Path:
        """Folder of Cedar policy files."""
        return self.home / "policies"

    @property
    def signers(self) -> Path:
        """Folder of trusted model signers' public keys (``*.pub.json``)."""
        return self.home / "signers"

    @property
    def database(self) -> Path:
        """The default SQLite database."""
        return self.home / "bastion.db"

    def owned(self) -> tuple[Path, ...]:
        """Everything ``bastion init`` creates, for ``--force`` to replace."""
        db = self.database
        return (
            self.config,
            self.home / "keys",
            self.home / "tls",
            self.policies,
            self.signers,
            db,
            db.with_name(db.name + "-wal"),
            db.with_name(db.name + "-shm"),
        )


class Workspace:
    """An opened workspace: settings, keys and the components built from them."""

    def __init__(self, *, settings: Settings, clock: Clock = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.paths = WorkspacePaths(settings.home.resolve())
        if not self.paths.signing_key.is_file():
            raise ConfigError(f"No workspace at {self.paths.home}; create one with `bastion init`.")
        kms = _open_kms(settings, self.paths, create=False)
        self.signing_keys = SigningKeyring(current=self.paths.signing_key, clock=clock)
        self.database = _open_database(settings, self.paths)
        self.keyring = Keyring(
            key_id=ROOT_KEYRING, backend=kms, database=self.database, clock=clock
        )
        self.blobs = BlobStore(database=self.database, keyring=self.keyring, clock=clock)
        # Client secrets are stored as HMACs under this key; it is itself stored encrypted.
        hash_key = self.blobs.get_or_create(
            "identity", "client-secret-hash-key", lambda: secrets.token_bytes(32)
        )
        self.principals = PrincipalStore(database=self.database, hash_key=hash_key, clock=clock)
        self.revocations = RevocationList(
            database=self.database, clock=clock, cache_seconds=settings.auth_cache_seconds
        )
        self.api_keys = ApiKeyStore(
            database=self.database, principals=self.principals, hash_key=hash_key, clock=clock
        )
        self._jail: Jail | None = None
        self.registry = ModelRegistry(
            database=self.database,
            blobs=self.blobs,
            clock=clock,
            trusted_signers=lambda: load_trusted(self.paths.signers),
            load_check=self._load_check(),
        )
        self.datasets = DatasetStore(blobs=self.blobs)
        self.privacy_budgets = BudgetLedger(database=self.database, clock=clock)
        audit_key = SigningKey.load(self.paths.audit_key)
        self.audit = AuditLog(
            database=self.database,
            signing_key=audit_key,
            origin=f"bastion-audit/{audit_key.kid[:16]}",  # stable and unique per workspace
            clock=clock,
            checkpoint_interval=settings.audit_checkpoint_seconds,
            checkpoint_entries=settings.audit_checkpoint_entries,
        )

    @classmethod
    def create(cls, settings: Settings, *, force: bool) -> Workspace:
        """Create a workspace: config, keys, local CA and server certificate, database.

        Raises:
            Conflict: a workspace exists there and ``force`` is False.
        """
        paths = WorkspacePaths(settings.home.resolve())
        if paths.signing_key.exists() or paths.config.exists():
            if not force:
                raise Conflict(
                    f"A workspace exists at {paths.home}; use --force to replace it "
                    "(its keys, and so its encrypted models, are lost)."
                )
            for path in paths.owned():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        if not paths.home.exists():
            paths.home.mkdir(parents=True)
            paths.home.chmod(0o700)  # only a folder we made; never tighten the user's own
        # The database holds hashes and ciphertext, still nobody else's business.
        if settings.database_url is None:
            paths.database.touch(mode=0o600)
        paths.config.write_text(_CONFIG_TEMPLATE)
        kms = _open_kms(settings, paths, create=True)
        database = _open_database(settings, paths)
        Keyring(key_id=ROOT_KEYRING, backend=kms, database=database, clock=time.time).create()
        database.close()
        SigningKey.generate(paths.signing_key)
        SigningKey.generate(paths.audit_key)
        paths.tls.ca_cert.parent.mkdir(parents=True, exist_ok=True)
        create_local_pki(paths.tls, hosts=_TLS_HOSTS, now=dt.datetime.now(dt.UTC))
        paths.policies.mkdir(parents=True, exist_ok=True)
        (paths.policies / "baseline.cedar").write_text(BASELINE_POLICY.read_text())
        return cls(settings=settings)

    def token_issuer(self) -> TokenIssuer:
        """Signs access tokens with the current signing key."""
        return TokenIssuer(
            key=self.signing_keys,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            ttl_seconds=self.settings.token_ttl_seconds,
            clock=self.clock,
        )

    def token_service(self) -> TokenService:
        """The OAuth 2.0 token service."""
        settings = self.settings
        resources = {settings.issuer: settings.audience, **settings.resources}
        assertions = ClientAssertions(
            database=self.database,
            # RFC 7523 §3: the token endpoint's URL; the issuer is accepted as well.
            audiences=(f"{settings.issuer}/oauth2/token", settings.issuer),
            leeway_seconds=settings.clock_skew_seconds,
            clock=self.clock,
        )
        # Clients introspect and revoke their tokens for any of the resources.
        own_tokens = TokenVerifier(
            keys=self.signing_keys,
            issuer=settings.issuer,
            audience=set(resources.values()),
            leeway_seconds=settings.clock_skew_seconds,
            clock=self.clock,
        )
        return TokenService(
            principals=self.principals,
            issuer=self.token_issuer(),
            verifier=own_tokens,
            revocations=self.revocations,
            assertions=assertions,
            resources=resources,
        )

    def token_verifier(self) -> TokenVerifier:
        """Verifies the access tokens this workspace issues."""
        return TokenVerifier(
            keys=self.signing_keys,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            leeway_seconds=self.settings.clock_skew_seconds,
            clock=self.clock,
        )

    def authorizer(self) -> CedarAuthorizer:
        """The Cedar authorizer over the workspace's policy files."""
        return CedarAuthorizer.from_folder(self.paths.policies)

    def mask_keys(self) -> MaskKeys:
        """Keys for the keyed masking operators, each made on first use and kept encrypted."""
        return lazy_mask_keys(lambda: self)

    def privacy_key(self, name: PrivacyKey) -> bytes:
        """A privacy key from the encrypted store, made the first time it is asked for."""
        size = VAULT_KEY_BYTES if name == "vault-key" else 32
        return self.blobs.get_or_create("privacy", name, lambda: secrets.token_bytes(size))

    def token_vault(self) -> TokenVault:
        """The reversible-tokenization vault in the workspace database."""
        key = self.privacy_key("vault-key")
        return TokenVault(database=self.database, key=key, clock=self.clock)

    def jail(self) -> Jail:
        """The bubblewrap jail models run in, with the limits of the settings (made once).

        Raises:
            ConfigError: bubblewrap or prlimit is missing.
        """
        if self._jail is None:
            settings = self.settings
            limits = SandboxLimits(
                memory_mb=settings.sandbox_memory_mb,
                cpu_seconds=settings.sandbox_cpu_seconds,
                timeout_seconds=settings.sandbox_timeout_seconds,
            )
            self._jail = Jail(limits=limits, hidden=[settings.home])
        return self._jail

    def _load_check(self) -> Callable[[bytes], bytes] | None:
        """How registration proves a model loads: in a jail, unless models run in process."""
        if self.settings.unsafe_in_process_runner:
            return None  # the registry's own in-process check
        return lambda artifact: self.jail().check_loads(artifact)

    def guard(self) -> Guard:
        """Cedar decisions and audit entries for actions run outside the gateway."""
        return Guard(authorizer=self.authorizer(), audit=self.audit, clock=self.clock)

    def reidentifier(self) -> Reidentifier:
        """Reveals tokens and FPE values to principals the policies allow; audited."""
        return Reidentifier(
            guard=self.guard(),
            vault=self.token_vault,
            fpe_key=lambda: self.privacy_key("fpe-key"),
        )

    def dp_engine(self) -> DpEngine:
        """Differentially private queries on the registered datasets, within budget."""
        return DpEngine(datasets=self.datasets, ledger=self.privacy_budgets)

    def close(self) -> None:
        """Sign a checkpoint of the audit entries written here, then release the database."""
        self.audit.close()
        self.database.close()


def lazy_mask_keys(open_workspace: Callable[[], Workspace]) -> MaskKeys:
    """Masking keys that open the workspace only when a policy needs one of them."""
    return MaskKeys(
        pseudonym_key=lambda: open_workspace().privacy_key("pseudonym-key"),
        fpe_key=lambda: open_workspace().privacy_key("fpe-key"),
        vault=lambda: open_workspace().token_vault(),
    )


def _open_kms(settings: Settings, paths: WorkspacePaths, *, create: bool) -> KekBackend:
    if settings.kms == "pkcs11":
        if settings.pkcs11_pin is None:
            raise ConfigError("The HSM is locked: set BASTION_PKCS11_PIN to the token's user PIN.")
        return Pkcs11Kms(
            library=settings.pkcs11_library,
            token_label=settings.pkcs11_token,
            pin=settings.pkcs11_pin,
            key_prefix=f"bastion-{ROOT_KEYRING}",
        )
    if create:
        if settings.passphrase is None:
            raise ConfigError("A passphrase is needed to protect the workspace keys.")
        return LocalKms.create(paths.keystore, passphrase=settings.passphrase)
    return LocalKms.open(paths.keystore, passphrase=settings.passphrase)


def _open_database(settings: Settings, paths: WorkspacePaths) -> Database:
    url = settings.database_url
    database = Database.open(url.get_secret_value() if url else f"sqlite:///{paths.database}")
    database.migrate()
    return database
