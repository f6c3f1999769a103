"""The budget ledger: charges are atomic, refusals charge nothing, nothing is unlimited."""

import threading
import time

import pytest

from bastion.errors import BudgetExhausted, InvalidInput, NotFound
from bastion.privacy.dp import BudgetLedger
from bastion.storage import Database


@pytest.fixture
def ledger(database):
    return BudgetLedger(database=database, clock=time.time)


def test_budgets_are_charged_until_they_run_out(ledger):
    """Dataset-wide and per-principal budgets both apply; the tighter one decides."""
    ledger.set_budget("census", epsilon=1.0)
    ledger.set_budget("census", epsilon=0.5, principal="bcl_ann")
    assert ledger.charge("census", "bcl_ann", epsilon=0.3, query="count").epsilon_left == (
        pytest.approx(0.2)
    )
    with pytest.raises(BudgetExhausted):
        ledger.charge("census", "bcl_ann", epsilon=0.3, query="count")
    assert ledger.charge("census", "bcl_bob", epsilon=0.7, query="count").epsilon_left == (
        pytest.approx(0.0)
    )
    with pytest.raises(BudgetExhausted):
        ledger.charge("census", "bcl_bob", epsilon=0.01, query="count")
    spent = {b.principal: b.epsilon_spent for b in ledger.budgets("census")}
    assert spent == {"*": pytest.approx(1.0), "bcl_ann": pytest.approx(0.3)}


def test_a_refused_charge_spends_nothing(ledger):
    """When the principal's budget refuses, the dataset's is not charged either."""
    ledger.set_budget("census", epsilon=10.0)
    ledger.set_budget("census", epsilon=0.1, principal="bcl_ann")
    with pytest.raises(BudgetExhausted):
        ledger.charge("census", "bcl_ann", epsilon=0.5, query="sum(age, 0, 100)")
    assert all(b.epsilon_spent == 0 for b in ledger.budgets("census"))


def test_no_budget_no_query_and_budgets_are_checked(ledger):
    """A dataset without a budget refuses every query; budgets must be finite and positive."""
    with pytest.raises(NotFound, match="no privacy budget"):
        ledger.charge("census", "bcl_ann", epsilon=0.1, query="count")
    for epsilon, delta in ((0.0, 0.0), (float("inf"), 0.0), (1.0, 1.0)):
        with pytest.raises(InvalidInput):
            ledger.set_budget("census", epsilon=epsilon, delta=delta)
    ledger.set_budget("census", epsilon=1.0)
    ledger.charge("census", "bcl_ann", epsilon=0.4, query="count")
    ledger.set_budget("census", epsilon=2.0)  # raising the total keeps what was spent
    assert ledger.budgets("census")[0].epsilon_left == pytest.approx(1.6)


def test_concurrent_charges_never_overspend(database_url):
    """Eight connections charge 0.1 at once, 80 times in all, against 3.05: exactly 30 pass."""
    setup = Database.open(database_url)
    setup.migrate()
    BudgetLedger(database=setup, clock=time.time).set_budget("census", epsilon=3.05)
    passed, barrier = [], threading.Barrier(8)

    def worker():
        db = Database.open(database_url)  # its own engine, as another process would have
        ledger = BudgetLedger(database=db, clock=time.time)
        barrier.wait()
        for _ in range(10):
            try:
                ledger.charge("census", "bcl_x", epsilon=0.1, query="count")
                passed.append(1)
            except BudgetExhausted:
                pass
        db.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [budget] = BudgetLedger(database=setup, clock=time.time).budgets("census")
    assert len(passed) == 30 and budget.epsilon_spent == pytest.approx(3.0)
    setup.close()


@pytest.mark.parametrize(
    ("epsilon", "delta", "error"),
    [
        (5e-324, 0.0, InvalidInput),
        (0.0, 0.0, InvalidInput),
        (-0.5, 0.0, InvalidInput),  # would refund the budget
        (float("nan"), 0.0, InvalidInput),  # compares false in SQL
        (float("inf"), 0.0, InvalidInput),
        (1e308, 0.0, InvalidInput),
        (10**400, 0.0, InvalidInput),
        (0.1, -0.1, InvalidInput),
        (0.1, 1.0, InvalidInput),
        (0.1, float("nan"), InvalidInput),
        ("0.1", 0.0, TypeError),
        (True, 0.0, TypeError),
        (0.1, False, TypeError),
        (None, 0.0, TypeError),
    ],
)
def test_bad_charges_are_refused_and_charge_nothing(ledger, epsilon, delta, error):
    """Whatever the caller, a charge outside ε in [1e-6, 1e6], δ in [0, 1) changes no row."""
    ledger.set_budget("census", epsilon=1.0, delta=0.5)
    ledger.set_budget("census", epsilon=0.8, principal="bcl_ann")
    before = ledger.budgets("census")
    with pytest.raises(error):
        ledger.charge("census", "bcl_ann", epsilon=epsilon, delta=delta, query="count")
    assert ledger.budgets("census") == before
    with pytest.raises(error):
        ledger.set_budget("census", epsilon=epsilon if epsilon != 0.1 else 1.0, delta=delta)
    assert ledger.budgets("census") == before
