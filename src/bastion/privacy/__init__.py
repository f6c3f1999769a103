"""Privacy: find and mask personal data, tokenize it reversibly, answer with differential privacy.

>>> from bastion.privacy import PiiScanner, Tag, mask_text
>>> text = "Write to ann@example.com, card 4111 1111 1111 1111."
>>> mask_text(text, PiiScanner().scan(text), operator=Tag())
'Write to <EMAIL>, card <CREDIT_CARD>.'
"""

from bastion.privacy.fpe import FF1
from bastion.privacy.operators import (
    FormatPreserving,
    Generalize,
    Operator,
    PartialMask,
    Pseudonym,
    Redact,
    Reversible,
    Tag,
    mask_text,
)
from bastion.privacy.policy import ColumnPlan, MaskKeys, MaskPolicy
from bastion.privacy.reidentify import Reidentifier
from bastion.privacy.scanner import Entity, Finding, PiiScanner, SpacyNames
from bastion.privacy.tabular import ColumnSummary, MaskSummary, mask_file
from bastion.privacy.vault import TokenVault

__all__ = [
    "FF1",
    "ColumnPlan",
    "ColumnSummary",
    "Entity",
    "Finding",
    "FormatPreserving",
    "Generalize",
    "MaskKeys",
    "MaskPolicy",
    "MaskSummary",
    "Operator",
    "PartialMask",
    "PiiScanner",
    "Pseudonym",
    "Redact",
    "Reidentifier",
    "Reversible",
    "SpacyNames",
    "Tag",
    "TokenVault",
    "mask_file",
    "mask_text",
]
