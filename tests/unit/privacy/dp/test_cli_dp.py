"""`bastion dp` as a user runs it: refused numbers and options exit 2 and change nothing."""

from __future__ import annotations

import pytest

from tests.integration.test_cli import bastion


@pytest.fixture
def census(tmp_path):
    """A workspace with a registered census dataset and a budget of ε 1."""
    home = tmp_path / "ws"
    bastion(home, "init")
    table = tmp_path / "census.csv"
    table.write_text("age\n" + "".join(f"{20 + i % 50}\n" for i in range(100)))
    bastion(home, "dp", "register", "census", str(table))
    bastion(home, "dp", "budget", "census", "--epsilon", "1")
    return home


def test_delta_without_epsilon_is_an_error_not_ignored(census):
    """`dp budget --delta` alone exits 2 and names the fix; with --epsilon it is honoured."""
    shown = bastion(census, "dp", "budget", "census").stdout
    alone = bastion(census, "dp", "budget", "census", "--delta", "0.5", check=False)
    assert alone.returncode == 2 and "--epsilon" in alone.stderr, alone
    assert "Traceback" not in alone.stderr
    assert bastion(census, "dp", "budget", "census").stdout == shown
    both = bastion(census, "dp", "budget", "census", "--epsilon", "1", "--delta", "0.25")
    assert "0.25" in both.stdout


def test_subnormal_bounds_exit_2_before_anything_is_charged(census):
    """`dp query` with subnormal or tiny bounds exits 2 (InvalidInput) and spends nothing."""
    shown = bastion(census, "dp", "budget", "census").stdout
    for spec in ("sum(age, 0, 4.8245e-319)", "sum(age, 0, 5e-324)", "mean(age, 0, 1e-7)"):
        result = bastion(census, "dp", "query", "census", spec, "--epsilon", "1",
                         "--principal", "bcl_" + "f" * 24, check=False)  # fmt: skip
        assert result.returncode == 2 and "Traceback" not in result.stderr, (spec, result)
    assert bastion(census, "dp", "budget", "census").stdout == shown
