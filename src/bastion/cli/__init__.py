"""The ``bastion`` command line: thin commands over the library, one module per group."""

from bastion.cli.app import app, main

__all__ = ["app", "main"]
