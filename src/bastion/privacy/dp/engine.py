"""Answer differentially private queries on registered datasets, within budget."""

from __future__ import annotations

from dataclasses import dataclass

from bastion.privacy.dp.datasets import DatasetStore
from bastion.privacy.dp.ledger import Budget, BudgetLedger
from bastion.privacy.dp.mechanisms import SYSTEM_RANDOM, RandomSource
from bastion.privacy.dp.queries import Answer, Query


@dataclass(frozen=True)
class Reply:
    """A query's noisy answer and the budget left after it (the tightest that applies)."""

    answer: Answer
    budget: Budget


class DpEngine:
    """Checks the column, charges the ledger, then answers: never an answer without a charge."""

    def __init__(
        self, *, datasets: DatasetStore, ledger: BudgetLedger, rng: RandomSource = SYSTEM_RANDOM
    ) -> None:
        self._datasets = datasets
        self._ledger = ledger
        self._rng = rng

    def ask(self, dataset: str, query: Query, *, principal: str) -> Reply:
        """Answer ``query`` on ``dataset`` for ``principal`` (a client id).

        Raises:
            NotFound: no such dataset or column, or no budget applies.
            InvalidInput: the column is not numeric.
            BudgetExhausted: the query costs more than is left.
        """
        values = self._datasets.column(dataset, query.column)  # a bad column costs nothing
        budget = self._ledger.charge(
            dataset, principal, epsilon=query.epsilon, query=query.describe()
        )
        return Reply(answer=query.run(values, rng=self._rng), budget=budget)
