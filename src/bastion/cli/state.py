"""What the root command hands to every subcommand, and who a command acts as."""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from bastion.errors import Forbidden, NotFound
from bastion.identity import Principal
from bastion.identity.scalars import digest_bytes, encodable
from bastion.settings import Settings
from bastion.workspace import Workspace

_CLIENT_ID = re.compile(r"bcl_[0-9a-f]{24}")
_UNKNOWN = "unknown:"
# The commands whose --principal goes through acting_as (audited even when unknown).
_ACTS_AS = frozenset({"reveal", "query", "register", "promote"})
# Real roles match [a-z][a-z0-9_-]*, so no principal can have this one.
_STAND_IN_ROLE = "(unknown principal)"


@dataclass(frozen=True)
class CliState:
    """Global options, from which each command builds Settings once."""

    home: Path | None
    opened: list[Workspace] = field(default_factory=list)  # closed when the command ends

    def settings(self, *, confirm_passphrase: bool = False, **overrides: Any) -> Settings:
        """Settings from flags, environment and the workspace's bastion.toml.

        Without BASTION_PASSPHRASE, an interactive terminal is asked for the passphrase.
        """
        settings = Settings.load(**({"home": self.home} | overrides))
        if settings.passphrase is None and sys.stdin.isatty():
            passphrase = typer.prompt(
                "Passphrase for the workspace keys",
                hide_input=True,
                confirmation_prompt=confirm_passphrase,
            )
            settings = settings.model_copy(update={"passphrase": SecretStr(passphrase)})
        return settings

    def workspace(self, **overrides: Any) -> Workspace:
        """Open the workspace (closed by :meth:`close` when the command ends)."""
        workspace = Workspace(settings=self.settings(**overrides))
        self.opened.append(workspace)
        return workspace

    def close(self) -> None:
        """Close every workspace the command opened: audit entries it wrote get signed."""
        while self.opened:
            self.opened.pop().close()


def state(ctx: typer.Context) -> CliState:
    """The CliState set by the root command, once the command's text arguments checked out.

    Every command calls this first, with its own context, so it is the one place where an
    argument that is not valid UTF-8 (bytes that Python keeps as lone surrogates) is
    refused as a usage error (exit 2), before it can crash a database query, the Guard or
    the audit log. File paths may be any bytes and are not checked; the ``--principal`` of
    a command that acts as one is left to :func:`acting_as`, which audits its refusal.

    Raises:
        typer.BadParameter: a text argument is not valid UTF-8.
    """
    value = ctx.find_root().obj
    if not isinstance(value, CliState):
        raise TypeError("the root command did not run")
    _check_arguments(ctx)
    return value


def asking_principal(ws: Workspace, client_id: str) -> Principal:
    """The principal with ``client_id``, or a disabled stand-in when there is none.

    Every command that acts as a ``--principal`` through the Guard (`pii reveal`, `dp
    query`, `model register`, `model promote`) looks it up here, never with
    ``principals.get``: an unknown id must still go through the Guard, so that its refusal
    is one more audit entry like every other attempt; the stand-in is disabled, so no policy
    can let it through. Its audited id is the given one only when that has the shape of a
    client id: anything else (a mistyped secret, say, or bytes that are not UTF-8) is
    recorded as a short digest, never verbatim.
    """
    try:
        return ws.principals.get(client_id)
    except NotFound:
        if _CLIENT_ID.fullmatch(client_id) is None:
            # Over the argument's own bytes, even when they are not UTF-8 (surrogateescape).
            digest = hashlib.sha256(digest_bytes(client_id)).hexdigest()[:16]
            client_id = f"{_UNKNOWN}{digest}"
        return Principal(client_id=client_id, name="", role=_STAND_IN_ROLE, disabled=True)


@contextlib.contextmanager
def acting_as(ws: Workspace, client_id: str) -> Iterator[Principal]:
    """The principal a command acts as (see :func:`asking_principal`), for a guarded block.

    A refusal of the stand-in for an unknown id leaves the block as NotFound ("No such
    principal."), after the Guard has audited it; every other refusal passes unchanged.

    An id that is not UTF-8 names no principal, so its refusal is audited like any other
    unknown id's (:func:`state` lets it through for these commands alone).

    Raises:
        NotFound: the id names no principal (the refusal is audited).
    """
    asker = asking_principal(ws, client_id)
    try:
        yield asker
    except Forbidden:
        if asker.role == _STAND_IN_ROLE:
            raise NotFound("No such principal.") from None
        raise


def _check_arguments(ctx: typer.Context) -> None:
    for param in ctx.command.params:
        if param.name is None or (param.name == "principal" and ctx.info_name in _ACTS_AS):
            continue
        given = ctx.params.get(param.name)
        values = given if isinstance(given, (list, tuple)) else [given]
        if any(isinstance(v, str) and not encodable(v) for v in values):
            raise typer.BadParameter("is not valid UTF-8 text.", ctx=ctx, param_hint=param.opts)
