"""``python -m bastion`` runs the CLI."""

from bastion.cli import main

main()
