"""Anonymization: Mondrian k-anonymity with l-diversity and t-closeness, and a checker.

>>> from bastion.privacy.anonymity import Columns, Mondrian, Requirements, synthetic_adult
>>> from bastion.privacy.anonymity import QUASI_IDENTIFIERS, check_anonymity
>>> table = synthetic_adult(2000, seed=1)
>>> columns = Columns(QUASI_IDENTIFIERS, sensitive="income")
>>> released = Mondrian(requirements=Requirements(k=5, l=2), columns=columns).fit_transform(table)
>>> report = check_anonymity(
...     released, quasi_identifiers=QUASI_IDENTIFIERS, sensitive="income", k=5, l=2
... )
>>> report.holds, report.smallest_class >= 5
(True, True)
"""

from bastion.privacy.anonymity.adult import QUASI_IDENTIFIERS, adult_hierarchies, synthetic_adult
from bastion.privacy.anonymity.checker import CheckReport, Violation, check_anonymity
from bastion.privacy.anonymity.hierarchy import Hierarchy
from bastion.privacy.anonymity.mondrian import AnonymityReport, Columns, Mondrian, Requirements

__all__ = [
    "QUASI_IDENTIFIERS",
    "AnonymityReport",
    "CheckReport",
    "Columns",
    "Hierarchy",
    "Mondrian",
    "Requirements",
    "Violation",
    "adult_hierarchies",
    "check_anonymity",
    "synthetic_adult",
]
