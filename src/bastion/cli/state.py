"""What the root command hands to every subcommand."""

from __future__ import annotations

import sys
from dataclasses import dataclass
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
        """Open the workspace."""
        return Workspace(settings=self.settings(**overrides))


def state(ctx: typer.Context) -> CliState:
    """The CliState set by the root command."""
    value = ctx.find_root().obj
    if not isinstance(value, CliState):
        raise TypeError("the root command did not run")
    return value
