"""`bastion model keygen|sign|verify|trust`: signed manifests of model folders."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from bastion.cli.policy import model_labels
from bastion.cli.state import state
from bastion.crypto.keys import SigningKey, public_jwk
from bastion.errors import InvalidInput
from bastion.registry import RobustnessClaim
from bastion.registry.claims import PrivacyClaim
from bastion.registry.manifest import (
    MANIFEST_NAME,
    SignedManifest,
    build_manifest,
    read_signer,
    sign_manifest,
    verify_manifest,
)

console = Console()


def add_commands(app: typer.Typer) -> None:
    """Put the signing commands in the `model` group."""
    app.command("keygen")(keygen)
    app.command("sign")(sign)
    app.command("verify")(verify)
    app.command("trust")(trust_signer)


def keygen(
    output: Annotated[Path, typer.Argument(help="Private key file to create (PEM, mode 0600).")],
) -> None:
    """Create a model-signing key, and its public JWK beside it (OUTPUT with .pub.json)."""
    key = SigningKey.generate(output)
    public = output.with_suffix(".pub.json")
    public.write_text(json.dumps(public_jwk(key.public_key, kid=key.kid), indent=2) + "\n")
    console.print(f"[green]✓[/] {output} (keep it secret) and {public} (share it with verifiers)")


def sign(
    folder: Annotated[
        Path, typer.Argument(help="The model's folder.", exists=True, file_okay=False)
    ],
    key: Annotated[
        Path, typer.Option(help="Signing key from `bastion model keygen`.", exists=True)
    ],
    name: Annotated[str, typer.Option(help="The model's name.")],
    owner: Annotated[str, typer.Option(help="Who answers for the model (team or person).")],
    risk_tier: Annotated[str, typer.Option(help="unassessed, low, medium or high.")] = "unassessed",
    classification: Annotated[
        str, typer.Option(help="public, internal, confidential or restricted.")
    ] = "internal",
    robustness: Annotated[
        Path | None,
        typer.Option(
            help="robustness.json from `bastion robustness eval`.", exists=True, dir_okay=False
        ),
    ] = None,
    privacy: Annotated[
        Path | None,
        typer.Option(help="privacy.json from `bastion dp train`.", exists=True, dir_okay=False),
    ] = None,
) -> None:
    """Write FOLDER/manifest.json: every file's SHA-256 and the metadata, signed with Ed25519."""
    claim = claim_from(robustness) if robustness is not None else None
    private = PrivacyClaim.from_json(_json_of(privacy)) if privacy is not None else None
    manifest = build_manifest(
        folder,
        name=name,
        owner=owner,
        created_at=time.time(),
        labels=model_labels(risk_tier, classification),
        robustness=claim,
        privacy=private,
    )
    signed = sign_manifest(manifest, SigningKey.load(key))
    (folder / MANIFEST_NAME).write_text(signed.to_json())
    console.print(
        f"[green]✓[/] Signed {len(manifest.files)} files of {name} as {signed.signer[:16]}… "
        f"→ {folder / MANIFEST_NAME}"
    )


def verify(
    folder: Annotated[
        Path, typer.Argument(help="The model's folder.", exists=True, file_okay=False)
    ],
    trust: Annotated[
        list[Path],
        typer.Option(help="Public JWK of a trusted signer (repeat for more).", exists=True),
    ],
) -> None:
    """Check FOLDER/manifest.json: a trusted signature, and every file exactly as listed."""
    manifest_file = folder / MANIFEST_NAME
    if not manifest_file.is_file():
        raise InvalidInput(f"{folder} has no {MANIFEST_NAME}; sign it with `bastion model sign`.")
    trusted = dict(read_signer(path) for path in trust)
    manifest = verify_manifest(
        folder, SignedManifest.from_json(manifest_file.read_text()), trusted=trusted
    )
    console.print(
        f"[green]✓[/] {manifest.name}: signature and all {len(manifest.files)} files verified "
        f"(owner {manifest.owner}, risk tier {manifest.labels.risk_tier}, "
        f"{manifest.labels.classification})"
    )
    if manifest.privacy is not None:
        claim = manifest.privacy
        console.print(
            f"privacy: ({claim.epsilon:.3g}, {claim.delta:.2g})-DP by {claim.mechanism}; "
            f"accountant {claim.accountant}"
        )


def trust_signer(
    ctx: typer.Context,
    public_key: Annotated[Path, typer.Argument(help="A signer's .pub.json from `model keygen`.")],
) -> None:
    """Trust a signer: `model register` accepts, and the gateway loads, its models."""
    folder = state(ctx).workspace().paths.signers
    kid, _ = read_signer(public_key)
    folder.mkdir(parents=True, exist_ok=True)
    trusted = folder / f"{kid}.pub.json"
    trusted.write_text(public_key.read_text())
    console.print(f"[green]✓[/] Trusted signer {kid[:16]}… (delete {trusted} to revoke)")


def manifest_of(file: Path) -> SignedManifest:
    """The signed manifest of ``file``'s folder (`model register` needs it)."""
    path = file.parent / MANIFEST_NAME
    if not path.is_file():
        raise InvalidInput(
            f"No signed manifest at {path}: sign the folder with `bastion model sign "
            f"{file.parent} --key KEY --name NAME` (and `bastion model trust` its public key), "
            "or pass --allow-unsigned for development."
        )
    return SignedManifest.from_json(path.read_text())


def claim_from(path: Path) -> RobustnessClaim:
    """The robustness claim in a robustness.json report."""
    return RobustnessClaim.from_json(_json_of(path))


def _json_of(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InvalidInput(f"{path} is not JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"{path} is not a JSON object.")
    return body
