"""The privacy-budget ledger: what each principal may still spend on each dataset.

A dataset has a budget for everyone together (principal ``*``) and may have one per
principal. A query is charged against every budget that applies, in one transaction
of conditional updates (``… SET spent = spent + ε WHERE spent + ε <= total``), so two
concurrent queries, from two gateway processes on one PostgreSQL, can never overspend:
the database serializes the updates of one row and re-checks the condition after the
other's commit. No budget at all means no query (diffprivlib's infinite default is
exactly what this refuses).

>>> from bastion.storage import Database
>>> db = Database.open("sqlite://"); db.migrate()
>>> ledger = BudgetLedger(database=db, clock=lambda: 0.0)
>>> ledger.set_budget("census", epsilon=1.0)
>>> ledger.charge("census", "bcl_ann", epsilon=0.75, query="count").epsilon_left
0.25
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from bastion.errors import BudgetExhausted, NotFound
from bastion.privacy.dp.limits import BUDGET_EPSILON_MAX, check_delta, check_epsilon
from bastion.storage import Database, tables
from bastion.types import Clock

EVERYONE = "*"
_SLACK = 1e-9  # float sums of many small charges may not add up to the total exactly


@dataclass(frozen=True)
class Budget:
    """One budget and what is left of it."""

    dataset: str
    principal: str  # a client id, or "*" for everyone together
    epsilon_total: float
    delta_total: float
    epsilon_spent: float
    delta_spent: float

    @property
    def epsilon_left(self) -> float:
        """ε still available."""
        return round(max(0.0, self.epsilon_total - self.epsilon_spent), 12)


class BudgetLedger:
    """Privacy budgets per dataset and principal, charged atomically."""

    def __init__(self, *, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    def set_budget(
        self, dataset: str, *, epsilon: float, delta: float = 0.0, principal: str = EVERYONE
    ) -> None:
        """Create a budget, or change its total (what was spent stays spent).

        Raises:
            InvalidInput: ε not in [1e-6, 1e6], or δ not in [0, 1) (:mod:`~.limits`).
            TypeError: ε or δ is not a real number (a bool is not).
        """
        epsilon = check_epsilon(epsilon, high=BUDGET_EPSILON_MAX)
        delta = check_delta(delta)
        key = _key(dataset, principal)
        values = {"epsilon_total": epsilon, "delta_total": delta, "updated_at": self._clock()}
        with self._db.transaction() as db:
            changed = db.execute(tables.privacy_budgets.update().where(key).values(values))
            if changed.rowcount == 0:
                db.execute(
                    tables.privacy_budgets.insert().values(
                        dataset=dataset,
                        principal=principal,
                        epsilon_spent=0.0,
                        delta_spent=0.0,
                        **values,
                    )
                )

    def budgets(self, dataset: str) -> list[Budget]:
        """Every budget of ``dataset``, everyone's first."""
        table = tables.privacy_budgets
        with self._db.transaction() as db:
            rows = db.execute(
                sa.select(table).where(table.c.dataset == dataset).order_by(table.c.principal)
            ).all()
        return [_budget(row) for row in rows]

    def charge(
        self, dataset: str, principal: str, *, epsilon: float, query: str, delta: float = 0.0
    ) -> Budget:
        """Spend (ε, δ) on ``dataset`` for ``principal``; returns the tightest budget after.

        Raises:
            InvalidInput: ε not in [1e-6, 1e6] or δ not in [0, 1); nothing is charged.
            TypeError: ε or δ is not a real number; nothing is charged.
            NotFound: no budget applies (the dataset has none, nor the principal).
            BudgetExhausted: a budget that applies has less left than the query costs.
        """
        # Checked here too, not only by Query: a negative charge would refund a budget and
        # a NaN one would compare false in SQL, whoever the caller is.
        epsilon = check_epsilon(epsilon, high=BUDGET_EPSILON_MAX)
        delta = check_delta(delta)
        table = tables.privacy_budgets
        with self._db.transaction() as db:
            # The same order in every transaction, so two charges never deadlock.
            applies = [EVERYONE, principal] if principal != EVERYONE else [EVERYONE]
            charged = 0
            for who in sorted(applies):
                result = db.execute(
                    table.update()
                    .where(_key(dataset, who))
                    .where(table.c.epsilon_spent + epsilon <= table.c.epsilon_total + _SLACK)
                    .where(table.c.delta_spent + delta <= table.c.delta_total + _SLACK)
                    .values(
                        epsilon_spent=table.c.epsilon_spent + epsilon,
                        delta_spent=table.c.delta_spent + delta,
                        updated_at=self._clock(),
                    )
                )
                charged += result.rowcount
            exist = db.execute(
                sa.select(sa.func.count())
                .select_from(table)
                .where(table.c.dataset == dataset, table.c.principal.in_(applies))
            ).scalar_one()
            if exist == 0:
                raise NotFound(f"Dataset {dataset!r} has no privacy budget; set one first.")
            if charged < exist:
                # Raising rolls the whole transaction back: no budget is charged at all.
                raise BudgetExhausted(detail=f"{dataset}: {query} needs epsilon {epsilon:g}")
            db.execute(
                tables.privacy_charges.insert().values(
                    time=self._clock(),
                    dataset=dataset,
                    principal=principal,
                    query=query[:200],
                    epsilon=epsilon,
                    delta=delta,
                )
            )
            rows = db.execute(
                sa.select(table).where(table.c.dataset == dataset, table.c.principal.in_(applies))
            ).all()
        return min((_budget(row) for row in rows), key=lambda b: b.epsilon_left)


def _key(dataset: str, principal: str) -> sa.ColumnElement[bool]:
    table = tables.privacy_budgets
    return sa.and_(table.c.dataset == dataset, table.c.principal == principal)


def _budget(row: sa.Row[tuple[object, ...]]) -> Budget:
    values = row._mapping
    return Budget(
        dataset=values["dataset"],
        principal=values["principal"],
        epsilon_total=values["epsilon_total"],
        delta_total=values["delta_total"],
        epsilon_spent=values["epsilon_spent"],
        delta_spent=values["delta_spent"],
    )
