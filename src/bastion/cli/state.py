"""What the root command hands to every subcommand."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from bastion.settings import Settings
from bastion.workspace import Workspace


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
    """The CliState set by the root command."""
    value = ctx.find_root().obj
    if not isinstance(value, CliState):
        raise TypeError("the root command did not run")
    return value
