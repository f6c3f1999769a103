"""`bastion keys` (rotate, rewrap, retire) and `bastion encrypt` / `bastion decrypt`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from bastion.cli.state import state
from bastion.crypto import decrypt_file, encrypt_file
from bastion.errors import Conflict

app = typer.Typer(
    help="Key versions of the workspace keyring (status, rotate, rewrap, retire) and the "
    "token-signing key (rotate-signing).",
    no_args_is_help=True,
)
console = Console()
SUFFIX = ".bst"
FileOperation = Callable[..., int]


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Show each key version, its use, and how many stored objects still need it."""
    ws = state(ctx).workspace()
    table = Table("version", "created (UTC)", "data keys wrapped", "state")
    for version in ws.keyring.status():
        label = "primary" if version.primary else ("retired" if version.retired else "decrypt")
        created = dt.datetime.fromtimestamp(version.created_at, dt.UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(str(version.version), created, f"≤ {version.wraps:,}", label)
    console.print(table)
    primary = next(v.version for v in ws.keyring.status() if v.primary)
    stale = ws.blobs.count_below(primary)
    console.print(f"{stale} stored objects use an older version than the primary.")


@app.command("rotate")
def rotate(ctx: typer.Context) -> None:
    """Make a new primary version; new data is wrapped by it, old versions still decrypt."""
    version = state(ctx).workspace().keyring.rotate()
    console.print(
        f"[green]✓[/] Version {version.version} is now primary. "
        "Run `bastion keys rewrap` to move stored objects to it."
    )


@app.command("rewrap")
def rewrap(ctx: typer.Context) -> None:
    """Rewrap every stored object's data key with the primary version (data untouched)."""
    ws = state(ctx).workspace()
    primary = next(v.version for v in ws.keyring.status() if v.primary)
    with Progress(*Progress.get_default_columns(), console=console) as progress:
        task = progress.add_task("rewrapping", total=ws.blobs.count_below(primary))
        moved = ws.blobs.rewrap(progress=lambda n: progress.advance(task, n))
    console.print(f"[green]✓[/] {moved} objects rewrapped to version {primary}.")


@app.command("rotate-signing")
def rotate_signing(ctx: typer.Context) -> None:
    """Make a new token-signing key; tokens signed by the old one stay valid until they expire.

    Running gateways pick the new key up by themselves and publish both in their JWKS.
    """
    key = state(ctx).workspace().signing_keys.rotate()
    console.print(
        f"[green]✓[/] New token-signing key {key.kid}; the previous one verifies "
        "the tokens it signed until they expire."
    )


@app.command("retire")
def retire(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="Retire this version and every older one.")],
) -> None:
    """Stop old versions from decrypting; refused while any stored object needs them."""
    state(ctx).workspace().blobs.retire(version)
    console.print(f"[green]✓[/] Versions up to {version} are retired.")


def encrypt(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="File to encrypt.", exists=True, dir_okay=False)],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Default: FILE.bst")] = None,
    context: Annotated[
        str, typer.Option(help="Label bound to the ciphertext; decrypt must give the same.")
    ] = "",
) -> None:
    """Encrypt a file of any size (AES-256-GCM stream, workspace keyring)."""
    target = output or file.with_name(file.name + SUFFIX)
    _convert(ctx, encrypt_file, file, target, context=context)


def decrypt(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="File to decrypt.", exists=True, dir_okay=False)],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Default: FILE without .bst")
    ] = None,
    context: Annotated[str, typer.Option(help="The label given to `bastion encrypt`.")] = "",
) -> None:
    """Decrypt a file; the output appears only if the whole file authenticates."""
    target = output or (
        file.with_suffix("") if file.suffix == SUFFIX else file.with_name(file.name + ".decrypted")
    )
    _convert(ctx, decrypt_file, file, target, context=context)


def _convert(
    ctx: typer.Context, operation: FileOperation, file: Path, target: Path, *, context: str
) -> None:
    """Run encrypt_file or decrypt_file with a progress bar, never over an existing file."""
    if target.exists():
        raise Conflict(f"{target} exists; choose another --output.")
    ws = state(ctx).workspace()
    label = f"{operation.__name__.split('_')[0]}ing {file.name}"
    with _bar(file.stat().st_size, label) as advance:
        operation(
            file, target, keys=ws.keyring, associated_data=_binding(context), progress=advance
        )
    console.print(f"[green]✓[/] {target}")


@contextmanager
def _bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar over bytes; yields ``advance(n)``."""
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _binding(context: str) -> bytes:
    return f"bastion/file/{context}".encode()


def register(root: typer.Typer) -> None:
    """Add this module's commands to the root command."""
    root.add_typer(app, name="keys")
    root.command("encrypt")(encrypt)
    root.command("decrypt")(decrypt)
