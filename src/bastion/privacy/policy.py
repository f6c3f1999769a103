"""Masking policies: a TOML file per dataset that says what happens to each column.

.. code-block:: toml

    dataset = "customers"
    unlisted = "scan"          # columns not named below: scan (default), keep, drop or fail
    scan_operator = "tag"      # how PII found by scanning is replaced: tag, redact or pseudonym

    [columns]
    customer_id = "keep"
    email = "pseudonym"                                  # keyed HMAC, stable across files
    card = { operator = "partial", keep_last = 4 }
    ssn = "fpe"                                          # FF1, reversible with the key
    name = "tokenize"                                    # random token, value in the vault
    birth_date = { operator = "generalize", to = "year" }
    zip = { operator = "generalize", to = "prefix:3" }
    age = { operator = "generalize", to = "range:10" }
    notes = "scan"                                       # free text: PII found and replaced
    phone = "drop"

Columns the policy does not name are scanned for personal data by default: a new column
in next month's export is not published unmasked because nobody updated the policy.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from bastion.errors import ConfigError, InvalidInput
from bastion.privacy.operators import (
    FormatPreserving,
    Generalize,
    Operator,
    PartialMask,
    Pseudonym,
    Redact,
    Tag,
)
from bastion.privacy.vault import TokenVault

Action = Literal["keep", "drop", "mask", "scan"]
T = TypeVar("T")


@dataclass(frozen=True)
class MaskKeys:
    """Where keyed operators get their keys: the workspace's keyring, usually.

    Each is a callable so that a policy which needs no key never touches the keyring.
    """

    pseudonym_key: Callable[[], bytes] | None = None
    fpe_key: Callable[[], bytes] | None = None
    vault: Callable[[], TokenVault] | None = None


@dataclass(frozen=True)
class ColumnPlan:
    """What happens to one column."""

    action: Action
    operator: Operator | None = None  # the mask, or how findings in scanned text are replaced
    description: str = ""


@dataclass(frozen=True)
class MaskPolicy:
    """A parsed policy: a plan per named column and one for every other column."""

    dataset: str
    columns: Mapping[str, ColumnPlan]
    unlisted: ColumnPlan | None  # None: a column the policy does not name is an error
    keys: MaskKeys = field(default_factory=MaskKeys, repr=False)

    @classmethod
    def load(cls, path: Path, *, keys: MaskKeys) -> MaskPolicy:
        """Read and check a policy file.

        Raises:
            ConfigError: the file is not valid TOML, or names an unknown operator or option.
        """
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"Cannot read the masking policy {path}: {exc}") from None
        return cls.from_document(document, keys=keys)

    @classmethod
    def from_document(cls, document: Mapping[str, Any], *, keys: MaskKeys) -> MaskPolicy:
        """Build a policy from parsed TOML.

        Raises:
            ConfigError: an unknown key, operator or option.
        """
        unknown = set(document) - {"dataset", "unlisted", "scan_operator", "columns"}
        if unknown:
            raise ConfigError(f"Unknown masking policy keys: {', '.join(sorted(unknown))}.")
        scan_with = _scan_operator(str(document.get("scan_operator", "tag")), keys)
        builder = _Builder(keys, scan_with)
        columns = document.get("columns", {})
        if not isinstance(columns, dict):
            raise ConfigError("[columns] must be a table of column = operator.")
        unlisted = str(document.get("unlisted", "scan"))
        if unlisted not in {"scan", "keep", "drop", "fail"}:
            raise ConfigError("unlisted is one of scan, keep, drop or fail.")
        return cls(
            dataset=str(document.get("dataset", "")),
            columns={str(name): builder.plan(str(name), spec) for name, spec in columns.items()},
            unlisted=None if unlisted == "fail" else builder.plan("(unlisted)", unlisted),
            keys=keys,
        )

    def plan_for(self, column: str) -> ColumnPlan:
        """The plan of ``column``.

        Raises:
            InvalidInput: the policy does not name it and says ``unlisted = "fail"``.
        """
        plan = self.columns.get(column, self.unlisted)
        if plan is None:
            raise InvalidInput(
                f'Column {column!r} is not in the masking policy (unlisted = "fail").'
            )
        return plan


class _Builder:
    def __init__(self, keys: MaskKeys, scan_with: Operator) -> None:
        self._keys = keys
        self._scan_with = scan_with

    def plan(self, column: str, spec: object) -> ColumnPlan:
        if isinstance(spec, str):
            options: dict[str, Any] = {"operator": spec}
        elif isinstance(spec, dict):
            options = dict(spec)
        else:
            raise ConfigError(f"Column {column!r}: give an operator name or a table.")
        name = str(options.pop("operator", ""))
        try:
            plan = self._plan(name, options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"Column {column!r}: {exc}") from None
        if options:
            raise ConfigError(f"Column {column!r}: unknown options {', '.join(sorted(options))}.")
        return plan

    def _plan(self, name: str, options: dict[str, Any]) -> ColumnPlan:  # noqa: PLR0911 - one per operator
        match name:
            case "keep" | "drop":
                return ColumnPlan(name, description=name)
            case "scan":
                return ColumnPlan("scan", self._scan_with, "scan")
            case "redact":
                return ColumnPlan("mask", Redact(), "redact")
            case "tag":
                return ColumnPlan("mask", Tag(), "tag")
            case "partial":
                mask = PartialMask(
                    keep_first=int(options.pop("keep_first", 0)),
                    keep_last=int(options.pop("keep_last", 4)),
                )
                return ColumnPlan("mask", mask, "partial")
            case "pseudonym":
                key = _need(self._keys.pseudonym_key, "pseudonym")()
                return ColumnPlan("mask", Pseudonym(key), "pseudonym")
            case "fpe":
                alphabet = str(options.pop("alphabet", "digits"))
                fpe = FormatPreserving(_need(self._keys.fpe_key, "fpe")(), alphabet=alphabet)
                return ColumnPlan("mask", fpe, f"fpe ({alphabet})")
            case "tokenize":
                return ColumnPlan("mask", _need(self._keys.vault, "tokenize")(), "tokenize")
            case "generalize":
                to = str(options.pop("to", ""))
                return ColumnPlan("mask", Generalize.parse(to), f"generalize ({to})")
        raise ValueError(
            f"unknown operator {name!r} (keep, drop, scan, redact, tag, partial, pseudonym, "
            "fpe, tokenize, generalize)"
        )


def _scan_operator(name: str, keys: MaskKeys) -> Operator:
    if name == "tag":
        return Tag()
    if name == "redact":
        return Redact()
    if name == "pseudonym":
        return Pseudonym(_need(keys.pseudonym_key, "pseudonym")())
    raise ConfigError("scan_operator is one of tag, redact or pseudonym.")


def _need(source: Callable[[], T] | None, operator: str) -> Callable[[], T]:
    if source is None:
        raise ConfigError(
            f"The {operator!r} operator needs a key from a workspace: run `bastion init` "
            "or pass --home."
        )
    return source
