"""Bastion's one typed, frozen Settings object.

Values come from, highest priority first: keyword arguments given by the entry point
(CLI flags), ``BASTION_*`` environment variables, then ``bastion.toml`` in the
workspace folder. Settings are built once, by ``cli.main`` or ``serving.build_app``,
and passed down; no other module reads the environment.

>>> from bastion.settings import Settings
>>> Settings(home="/tmp/ws").token_ttl_seconds
300
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bastion.errors import ConfigError

CONFIG_FILE = "bastion.toml"
MAX_TOKEN_TTL_SECONDS = 900  # RFC 9068 tokens here are short-lived: 15 minutes at most.


_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                         "ES256", "ES384", "ES512", "EdDSA"})  # fmt: skip


class TrustedIssuer(BaseModel):
    """One external issuer whose access tokens the gateway accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,31}$", description="Short name, in ids.")
    issuer: str = Field(description="The issuer URL, exactly as in its tokens' `iss`.")
    audience: str = Field(description="The `aud` its tokens must name for this gateway.")
    ca_file: Path | None = Field(None, description="CA bundle for its HTTPS; default: system.")
    algorithms: tuple[str, ...] = Field(("RS256", "ES256", "EdDSA"), min_length=1)
    token_types: tuple[str, ...] = Field(
        ("at+jwt",), description='Accepted `typ` headers; many IdPs send "JWT".'
    )
    role_claim: str = Field("roles", description="Claim holding role names (string or list).")
    roles: dict[str, str] = Field(
        default_factory=dict, description="Issuer role → Bastion role; unmapped: no role."
    )
    attribute_claims: dict[str, str] = Field(
        default_factory=dict, description="Bastion attribute → claim, e.g. {team = 'dept'}."
    )
    jwks_cache_seconds: float = Field(300.0, ge=1, le=86400)
    jwks_refresh_seconds: float = Field(
        30.0, ge=0.1, le=3600, description="Least time between fetches for an unknown `kid`."
    )

    @field_validator("issuer")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("an issuer URL must be https")
        return value.rstrip("/")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not set(value) <= _ASYMMETRIC:
            raise ValueError(f"algorithms must be among {sorted(_ASYMMETRIC)}")
        return value


class ModelLimit(BaseModel):
    """Limits on one model, shared by every principal that calls it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate_per_second: float | None = Field(None, gt=0, description="Sustained requests/s.")
    burst: int = Field(10, ge=1, description="Requests allowed above the rate at once.")
    daily_quota: int | None = Field(None, ge=1, description="Requests per UTC day.")


class Settings(BaseSettings):
    """Everything an operator can configure, validated at startup."""

    model_config = SettingsConfigDict(
        env_prefix="BASTION_", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    home: Path = Field(Path(".bastion"), description="The workspace folder.")
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the database; default: SQLite in the workspace. "
        "Example: postgresql+psycopg://bastion@127.0.0.1:5432/bastion",
    )
    passphrase: SecretStr | None = Field(
        None,
        description="Unlocks the workspace keys (local KMS). Give it in BASTION_PASSPHRASE "
        "or at the prompt; never in bastion.toml.",
    )
    kms: Literal["local", "pkcs11"] = Field(
        "local", description="Where key-encryption keys live: a local keystore or an HSM."
    )
    pkcs11_library: Path = Field(
        Path("/usr/lib/softhsm/libsofthsm2.so"), description="The HSM's PKCS#11 module."
    )
    pkcs11_token: str = Field("bastion", description="Label of the PKCS#11 token.")
    pkcs11_pin: SecretStr | None = Field(
        None, description="User PIN of the token; give it in BASTION_PKCS11_PIN."
    )
    redis_url: SecretStr | None = Field(
        None,
        description="Share rate limits, daily quotas and lockouts between gateway processes "
        "through this Redis, e.g. redis://127.0.0.1:6379/0; default: each process on its own.",
    )
    redis_timeout_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="How long a gateway waits for Redis to answer a command before it refuses "
        "the request with 503 (fail closed).",
    )
    redis_connect_timeout_seconds: float = Field(
        0.25, gt=0, le=10, description="How long a gateway waits to connect to Redis."
    )
    host: str = Field("127.0.0.1", description="Address `bastion serve` listens on.")
    port: int = Field(8443, ge=0, le=65535, description="Port `bastion serve` listens on.")
    public_url: str | None = Field(
        None, description="URL clients use to reach the gateway; default https://HOST:PORT."
    )
    audience: str = Field("bastion", description="The `aud` claim of access tokens.")
    resources: dict[str, str] = Field(
        default_factory=dict,
        description="Other resource servers a client may ask tokens for (RFC 8707 "
        "`resource`): resource URI → audience, e.g. "
        '{"https://scoring.internal" = "scoring"}. This gateway refuses those tokens; '
        "its own URL (public_url) is always a resource, with audience `audience`.",
    )
    trusted_issuers: tuple[TrustedIssuer, ...] = Field(
        (),
        description="External OpenID Connect / OAuth 2.0 issuers whose access tokens the "
        "gateway accepts ([[trusted_issuers]] tables in bastion.toml; docs/identity.md).",
    )
    allow_tls12: bool = Field(
        False, description="Also accept TLS 1.2 (strong AEAD suites only); default TLS 1.3 only."
    )
    mtls: Literal["off", "optional", "required"] = Field(
        "off",
        description="Ask clients for a certificate from the workspace CA: off, optional "
        "(used when given) or required (no certificate, no connection).",
    )
    token_ttl_seconds: int = Field(
        300, ge=30, le=MAX_TOKEN_TTL_SECONDS, description="Lifetime of access tokens."
    )
    clock_skew_seconds: int = Field(
        30, ge=0, le=600, description="Leeway when checking token times."
    )
    lockout_failures: int = Field(
        10,
        ge=2,
        le=1000,
        description="Failed authentications of one client id from one address within "
        "lockout_seconds before that client id is refused at that address.",
    )
    lockout_seconds: int = Field(
        900,
        ge=1,
        le=86400,
        description="The counting window of a client id at an address, and how long it is "
        "then refused there.",
    )
    lockout_client_failures_per_hour: int = Field(
        100,
        ge=2,
        le=100_000,
        description="Failed authentications of one client id per hour from all addresses "
        "together; past it, only addresses where the client authenticated in the last 30 "
        "days may still try (brute force from many addresses stays this slow).",
    )
    auth_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description="How long a gateway reuses a verified token, a principal it loaded and its "
        "copy of the revocation list (0: never). Disabling a principal, or revoking a token "
        "through another gateway, takes up to this long here.",
    )
    rate_per_second: float = Field(
        50.0, gt=0, description="Sustained requests per second allowed to each principal."
    )
    rate_burst: int = Field(100, ge=1, description="Requests a principal may burst above the rate.")
    daily_quota: int | None = Field(
        None, ge=1, description="Requests each principal may make per UTC day (none: no quota)."
    )
    model_limits: dict[str, ModelLimit] = Field(
        default_factory=dict,
        description="Per-model limits shared by all principals, e.g. "
        "[model_limits.digits] rate_per_second = 20, burst = 40, daily_quota = 100000.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=1024**3, description="Largest request body accepted."
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=4096,
        le=16 * 1024 * 1024,
        description="Largest request line plus headers of one request; past it the client "
        "gets 431 and the connection is closed.",
    )
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Time a client has to finish its TLS handshake, and to send a request's "
        "headers, counted from the TLS "
        "handshake (or from the first byte of a later request on a kept-alive connection); "
        "then the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Time a client has to send a request's body once its headers are in; "
        "then the connection is closed.",
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0, le=300, description="How long an idle kept-alive connection stays open."
    )
    max_connections: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Open connections a gateway process holds; past it, a new connection is "
        "closed as soon as its TLS handshake ends.",
    )
    max_connections_per_address: int = Field(
        100,
        ge=1,
        le=1_000_000,
        description="Open connections from one client address; past it, a new connection from "
        "that address is closed as soon as its TLS handshake ends.",
    )
    sandbox_workers: int = Field(
        2, ge=1, le=256, description="Sandboxed worker processes per model version."
    )
    sandbox_max_workers: int = Field(
        64, ge=1, le=4096, description="Most model worker processes a gateway runs at once."
    )
    sandbox_pool_sizes: dict[str, Annotated[int, Field(ge=1, le=256)]] = Field(
        default_factory=dict,
        description="Workers per model name, overriding sandbox_workers, e.g. {digits = 4}.",
    )
    sandbox_memory_mb: int = Field(
        2048, ge=256, le=1024 * 1024, description="Address space of each model worker."
    )
    sandbox_cpu_seconds: int = Field(
        10, ge=1, le=3600, description="CPU time one request may use in a model worker."
    )
    sandbox_timeout_seconds: float = Field(
        10.0, gt=0, le=3600, description="Wall-clock time one request may take in a worker."
    )
    unsafe_in_process_runner: bool = Field(
        False,
        description="Run models inside the gateway process, without the bubblewrap sandbox "
        "(development only: a hostile model then reaches the workspace keys).",
    )
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")
    audit_checkpoint_seconds: float = Field(
        10.0,
        ge=1,
        le=3600,
        description="The longest an audit entry waits for a signed checkpoint (the time trigger).",
    )
    audit_checkpoint_entries: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Unsigned audit entries that trigger a checkpoint at once (the size trigger).",
    )
    alert_webhook_url: str | None = Field(
        None, description="Alerts are POSTed here, signed; https unless on loopback."
    )
    alert_webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key of the alert webhook's signature header."
    )

    @model_validator(mode="after")
    def _urls_are_safe(self) -> Settings:
        if self.public_url is not None and not self.public_url.startswith("https://"):
            raise ValueError("public_url must start with https://")
        webhook = self.alert_webhook_url
        if (webhook is None) != (self.alert_webhook_secret is None):
            raise ValueError("alert_webhook_url and alert_webhook_secret go together")
        loopback = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")
        if webhook is not None and not webhook.startswith(("https://", *loopback)):
            raise ValueError("alert_webhook_url must be https (or http on loopback)")
        if any(not uri.startswith("https://") or "#" in uri for uri in self.resources):
            raise ValueError("resources are https URIs without a fragment (RFC 8707)")
        return self

    @property
    def issuer(self) -> str:
        """The token issuer: the gateway's public URL."""
        return self.public_url or f"https://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        """Path of ``bastion.toml`` in the workspace."""
        return self.home / CONFIG_FILE

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Build Settings, turning validation problems into one ConfigError.

        Raises:
            ConfigError: a value is missing, out of range or contradictory.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
                for err in exc.errors()
            )
            # The message names fields, never values (hide_input_in_errors).
            raise ConfigError(f"Invalid settings: {problems}") from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags, then environment, then the workspace's bastion.toml."""
        return (
            init_settings,
            env_settings,
            _WorkspaceToml(settings_cls, init_settings, env_settings),
        )


class _WorkspaceToml(PydanticBaseSettingsSource):
    """Reads ``bastion.toml`` from the workspace that the higher sources name."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
    ) -> None:
        super().__init__(settings_cls)
        self._init = init_settings
        self._env = env_settings

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: the whole file is read at once in ``__call__``."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        init_values = self._init.init_kwargs if isinstance(self._init, InitSettingsSource) else {}
        home = init_values.get("home") or self._env().get("home") or Path(".bastion")
        path = Path(home) / CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            with path.open("rb") as file:
                values = tomllib.load(file)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        values.pop("home", None)  # the file lives in the workspace; it cannot move it
        for secret, variable in (
            ("passphrase", "BASTION_PASSPHRASE"),
            ("pkcs11_pin", "BASTION_PKCS11_PIN"),
        ):
            if secret in values:
                raise ConfigError(f"{path} holds {secret}; remove it and use {variable}.")
        return values
