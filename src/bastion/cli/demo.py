"""`bastion demo`: the whole secure request path, end to end, in a throwaway workspace."""

from __future__ import annotations

import json
import secrets
import ssl
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import numpy as np
import typer
from numpy.typing import NDArray
from pydantic import SecretStr
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bastion.cli.audit import entries_table
from bastion.client import Client
from bastion.crypto import b64url, b64url_decode
from bastion.errors import AuthError, Forbidden
from bastion.identity import TokenIssuer
from bastion.registry import OutputPolicy
from bastion.samples import DIGITS_INPUT, train_digits
from bastion.settings import Settings
from bastion.workspace import Workspace

if TYPE_CHECKING:
    from bastion.serving import ServerProcess

console = Console()
_SHOWN = 8


def demo() -> None:
    """Walk through Bastion's secure request path with a real server and real TLS.

    Everything happens in a temporary workspace that is deleted at the end.
    """
    # The gateway's imports are heavy: load them for the demo only, not for every command.
    from bastion.serving import ServerProcess, free_port  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bastion-demo-") as scratch:
        home = Path(scratch) / "workspace"
        port = free_port()
        passphrase = secrets.token_urlsafe(24)  # a throwaway workspace's throwaway passphrase
        _step(1, "Create a workspace: keystore, signing key, local CA, database, policies")
        settings = Settings(home=home, port=port, passphrase=SecretStr(passphrase))
        ws = Workspace.create(settings, force=False)
        console.print(
            f"  workspace {ws.paths.home}, server certificate signed by {ws.paths.tls.ca_cert.name}"
        )

        _step(2, "Train a digits classifier (scikit-learn, bundled data) and register it")
        sample = train_digits()
        model_file = Path(scratch) / "digits.onnx"
        model_file.write_bytes(sample.onnx)
        model = ws.registry.register(
            model_file, name="digits", version=None, output_policy=OutputPolicy(round_digits=4)
        )
        console.print(
            f"  {model.ref}: held-out accuracy {sample.accuracy:.1%}; stored "
            "AES-256-GCM encrypted; probabilities rounded to 4 digits"
        )

        _step(3, "Create two principals: 'ana' (role analyst) and 'gus' (role guest)")
        ana = ws.principals.add("ana", role="analyst", attributes={"team": "research"})
        gus = ws.principals.add("gus", role="guest", attributes={})
        console.print("  secrets are shown once and stored only as keyed hashes")

        with ServerProcess(
            home=ws.paths.home,
            port=port,
            log=Path(scratch) / "server.log",
            env={"BASTION_PASSPHRASE": passphrase},
        ) as server:
            console.print(f"  [dim]bastion serve is up at {server.url} (TLS, verified)[/]")
            client = Client(server.url, ana.principal.client_id, ana.secret, ca=server.ca)
            _show_token(client.token())
            _show_prediction(client, sample.images[:_SHOWN], sample.labels[:_SHOWN])

            _step(6, "'gus' (guest) asks for the same prediction")
            guest = Client(server.url, gus.principal.client_id, gus.secret, ca=server.ca)
            try:
                guest.infer("digits", {DIGITS_INPUT: sample.images[:1]})
                raise typer.Exit(1)  # a guest must never get through
            except Forbidden as exc:
                console.print(f"  [red]403 Forbidden[/]: {exc.public_message} (deny by default)")

            _step(7, "A forged token and an expired token are refused")
            _show_bad_tokens(ws, server, client.token())
            client.close()
            guest.close()

        _step(8, "The audit log: every request, in a signed Merkle tree")
        console.print(entries_table(ws.audit.tail(10)))
        checkpoint = ws.audit.checkpoint()
        report = ws.audit.verify()
        console.print(
            f"  [green]✓ Merkle log verified[/]: {report.size} entries, signed checkpoint "
            f"{checkpoint.root.hex()[:16]}…"
        )
        ws.close()
    console.print(
        Panel("Demo complete: token → allowed → denied → refused → audited.", style="green")
    )


def _step(number: int, title: str) -> None:
    console.rule(f"[bold]{number}. {title}", align="left")


def _show_token(token: str) -> None:
    _step(4, "'ana' gets an access token (OAuth 2.0 client credentials)")
    header, claims, _ = token.split(".")
    table = Table("part", "value", show_header=False)
    table.add_row("header", json.dumps(json.loads(b64url_decode(header))))
    for name, value in json.loads(b64url_decode(claims)).items():
        table.add_row(name, str(value))
    console.print(table)


def _show_prediction(
    client: Client, images: NDArray[np.float32], labels: NDArray[np.int64]
) -> None:
    _step(5, "'ana' calls the model through the V2 inference API")
    outputs = client.infer("digits", {DIGITS_INPUT: images})
    table = Table("image", "predicted", "true", "confidence")
    for i, (predicted, true) in enumerate(zip(outputs["label"], labels, strict=True)):
        mark = "[green]✓[/]" if predicted == true else "[red]✗[/]"
        table.add_row(
            str(i), f"{predicted} {mark}", str(true), f"{outputs['probabilities'][i].max():.4f}"
        )
    console.print(table)


def _show_bad_tokens(ws: Workspace, server: ServerProcess, token: str) -> None:
    head, body, signature = token.split(".")
    forged_claims = json.loads(b64url_decode(body)) | {"client_id": "bcl_admin"}
    forged = f"{head}.{b64url(json.dumps(forged_claims).encode())}.{signature}"
    expired = TokenIssuer(
        key=ws.signing_keys.current(),
        issuer=server.url,
        audience=ws.settings.audience,
        ttl_seconds=60,
        clock=lambda: time.time() - 3600,
    ).issue(
        ws.principals.get(json.loads(b64url_decode(body))["client_id"]),
        certificate_thumbprint=None,
    )
    tokens = [
        ("forged (claims edited)", forged),
        ("expired an hour ago", expired.value.get_secret_value()),
    ]
    with httpx.Client(verify=ssl.create_default_context(cafile=server.ca)) as http:
        for label, bad in tokens:
            response = http.get(
                f"{server.url}/v2/models/digits", headers={"Authorization": f"Bearer {bad}"}
            )
            if response.status_code != AuthError.http_status:
                raise typer.Exit(1)
            console.print(f"  {label}: [red]{response.status_code}[/] {response.json()['error']}")
