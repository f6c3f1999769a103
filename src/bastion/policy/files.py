"""The workspace's policy files, changed only into a set that still validates.

Running gateways follow the folder (``reloading.py``); writing through here means a
change that would not parse or validate never reaches it.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from bastion.errors import ConfigError, InvalidInput, NotFound
from bastion.policy.authorizer import CedarAuthorizer

_FILE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}\.cedar$")
MAX_POLICY_BYTES = 256 * 1024


class PolicyFiles:
    """Reads, writes and deletes ``*.cedar`` files in one folder."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def read(self) -> dict[str, str]:
        """Every policy file, by name."""
        return {path.name: path.read_text() for path in sorted(self._folder.glob("*.cedar"))}

    def write(self, name: str, text: str) -> tuple[str, ...]:
        """Create or replace ``name``; return the ids of the policies now in force.

        Raises:
            InvalidInput: a bad file name, or the policies would not parse or validate.
        """
        _check_name(name)
        if len(text.encode()) > MAX_POLICY_BYTES:
            raise InvalidInput(f"A policy file holds at most {MAX_POLICY_BYTES} bytes.")
        ids = _validated(self.read() | {name: text})
        handle, temporary = tempfile.mkstemp(dir=self._folder, prefix=".", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.replace(temporary, self._folder / name)  # atomic: a gateway never reads half
        return ids

    def delete(self, name: str) -> tuple[str, ...]:
        """Delete ``name``; return the ids of the policies still in force.

        Raises:
            NotFound: there is no such file.
            InvalidInput: the remaining policies would not validate (or there would be none).
        """
        _check_name(name)
        files = self.read()
        if files.pop(name, None) is None:
            raise NotFound(f"No policy file {name!r}.")
        ids = _validated(files)
        (self._folder / name).unlink()
        return ids


def _check_name(name: str) -> None:
    if not _FILE.fullmatch(name):
        raise InvalidInput("Policy files are named like access-rules.cedar (a-z, 0-9, '-', '_').")


def _validated(files: dict[str, str]) -> tuple[str, ...]:
    try:
        return CedarAuthorizer(policies="\n".join(files.values())).policy_ids
    except ConfigError as exc:
        raise InvalidInput(exc.public_message) from None
    except ValueError as exc:  # cedarpy's parser
        raise InvalidInput(f"The policies do not parse: {str(exc)[:300]}") from None
