"""Differential privacy: exact discrete noise, bounded queries, and an enforced budget.

>>> import numpy as np
>>> from bastion.privacy.dp import Query
>>> answer = Query.parse("count", epsilon=1.0).run(np.zeros(1000))
>>> 980 < answer.value < 1020
True
"""

from bastion.privacy.dp.datasets import DatasetInfo, DatasetStore
from bastion.privacy.dp.engine import DpEngine, Reply
from bastion.privacy.dp.ledger import EVERYONE, Budget, BudgetLedger
from bastion.privacy.dp.mechanisms import discrete_gaussian, discrete_laplace, laplace_scale
from bastion.privacy.dp.queries import Answer, Query

__all__ = [
    "EVERYONE",
    "Answer",
    "Budget",
    "BudgetLedger",
    "DatasetInfo",
    "DatasetStore",
    "DpEngine",
    "Query",
    "Reply",
    "discrete_gaussian",
    "discrete_laplace",
    "laplace_scale",
]
