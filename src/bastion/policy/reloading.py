"""Policies that follow their files: edit a ``*.cedar`` file and gateways pick it up.

The folder is looked at most once a second. A new set of policies replaces the old one
only if it parses and validates; otherwise the last good set stays in force and the
problem is reported, so a typo never opens or closes the whole gateway by surprise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from threading import Lock

from bastion.errors import ConfigError
from bastion.policy.authorizer import AccessRequest, CedarAuthorizer, Decision
from bastion.types import Clock

logger = logging.getLogger("bastion.policy")
_CHECK_EVERY = 1.0

Signature = tuple[tuple[str, int, int], ...]


class ReloadingAuthorizer:
    """A CedarAuthorizer over a folder, reloaded when its files change."""

    def __init__(
        self,
        folder: Path,
        *,
        clock: Clock,
        on_change: Callable[[tuple[str, ...] | None, str], None] = lambda ids, problem: None,
    ) -> None:
        self._folder = folder
        self._clock = clock
        self._on_change = on_change  # (new policy ids, or None when rejected; a description)
        self._lock = Lock()
        self._signature = self._files()
        self._current = CedarAuthorizer.from_folder(folder)
        self._checked = clock()
        self.version = 0

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The ids of the policies in force."""
        return self._current.policy_ids

    def decide(self, request: AccessRequest) -> Decision:
        """Decide with the policies in force, after a reload if the files changed."""
        now = self._clock()
        if now - self._checked >= _CHECK_EVERY:
            self._checked = now
            self._reload_if_changed()
        return self._current.decide(request)

    def _reload_if_changed(self) -> None:
        with self._lock:
            signature = self._files()
            if signature == self._signature:
                return
            self._signature = signature
            try:
                fresh = CedarAuthorizer.from_folder(self._folder)
            except ConfigError as exc:
                logger.error("policy files rejected, the previous policies stay: %s", exc)
                self._on_change(None, exc.public_message)
                return
            self._current = fresh
            self.version += 1
            self._on_change(fresh.policy_ids, f"policies reloaded: {', '.join(fresh.policy_ids)}")

    def _files(self) -> Signature:
        return tuple(
            (path.name, path.stat().st_mtime_ns, path.stat().st_size)
            for path in sorted(self._folder.glob("*.cedar"))
        )
