"""Mondrian: every output passes the independent checker; utility is measured; misuse fails."""

import numpy as np
import pyarrow as pa
import pytest

from bastion.errors import InvalidInput, NotFittedError
from bastion.privacy.anonymity import (
    QUASI_IDENTIFIERS,
    Columns,
    Hierarchy,
    Mondrian,
    Requirements,
    adult_hierarchies,
    check_anonymity,
    synthetic_adult,
)


@pytest.fixture(scope="module")
def adult():
    return synthetic_adult(30_000, seed=11)


@pytest.fixture(scope="module")
def small_adult():
    return synthetic_adult(6_000, seed=12)


def released(table, requirements, *, hierarchies=None, sensitive="income", **options):
    columns = Columns(QUASI_IDENTIFIERS, sensitive=sensitive, hierarchies=hierarchies or {})
    model = Mondrian(requirements=requirements, columns=columns, random_state=0, **options)
    return model, model.fit_transform(table)


def verify(output, requirements, sensitive="income"):
    return check_anonymity(
        output,
        quasi_identifiers=QUASI_IDENTIFIERS,
        sensitive=sensitive,
        k=requirements.k,
        l=requirements.l,
        diversity=requirements.diversity,
        c=requirements.c,
        t=requirements.t,
    )


CASES = [  # the first two on the 30 000-row table, the rest on 6 000 rows (the same code)
    ("k", Requirements(k=10), "strict", False, "income"),
    ("t ordered", Requirements(k=5, t=0.1), "strict", True, "hours"),
    ("k relaxed", Requirements(k=10), "relaxed", False, "income"),
    ("k hierarchies", Requirements(k=5), "strict", True, "income"),
    ("distinct l", Requirements(k=5, l=2), "strict", False, "income"),
    ("entropy l", Requirements(k=5, l=3, diversity="entropy"), "relaxed", True, "hours"),
    ("recursive l", Requirements(k=5, l=2, diversity="recursive", c=4), "strict", False, "income"),
    ("t categorical", Requirements(k=5, t=0.15), "relaxed", False, "income"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_release_of_the_adult_table_passes_the_checker(adult, small_adult, case):
    """Adult-like rows, 8 quasi-identifiers: the checker confirms k, l and t."""
    _, requirements, mode, tree, sensitive = case
    adult = adult if CASES.index(case) < 2 else small_adult
    hierarchies = adult_hierarchies() if tree else None
    model, output = released(
        adult, requirements, hierarchies=hierarchies, mode=mode, sensitive=sensitive
    )
    report = verify(output, requirements, sensitive)
    assert report.holds, report.violations[:3]
    # Relaxed classes may share a label; the checker then sees them as one (still safe).
    assert report.rows == adult.num_rows and report.classes <= model.report_.classes
    assert report.smallest_class == model.report_.min_class >= requirements.k
    assert 0 < model.report_.ncp < 0.5
    assert set(output.column_names) == {*QUASI_IDENTIFIERS, sensitive}  # the rest is dropped


def test_relaxed_is_at_least_as_precise_and_the_checker_catches_a_bad_release(adult):
    """Relaxed classes are tighter; a release with a class under k fails the checker."""
    strict, _ = released(adult, Requirements(k=10), mode="strict")
    relaxed, _ = released(adult, Requirements(k=10), mode="relaxed")
    assert relaxed.report_.ncp <= strict.report_.ncp
    assert relaxed.report_.discernibility <= strict.report_.discernibility
    leaky = adult.select([*QUASI_IDENTIFIERS, "income"]).slice(0, 50)
    report = verify(leaky, Requirements(k=2, l=2))
    assert not report.holds and {v.guarantee for v in report.violations} == {"k", "l"}


def test_rows_are_shuffled_and_values_generalized():
    """Output order does not follow the partition; numbers become ranges, categories nodes."""
    table = pa.table(
        {
            "age": list(range(20, 60)),
            "city": ["Paris", "Lyon", "Rome", "Milan"] * 10,
            "disease": ["flu", "cold"] * 20,
            "name": [f"person{i}" for i in range(40)],
        }
    )
    tree = Hierarchy.from_paths(
        [["Paris", "FR", "*"], ["Lyon", "FR", "*"], ["Rome", "IT", "*"], ["Milan", "IT", "*"]]
    )
    columns = Columns(("age", "city"), sensitive="disease", hierarchies={"city": tree})
    first = Mondrian(requirements=Requirements(k=4), columns=columns, random_state=1)
    output = first.fit_transform(table)
    assert "name" not in output.column_names
    assert set(output["city"].to_pylist()) <= {"Paris", "Lyon", "Rome", "Milan", "FR", "IT", "*"}
    assert all(v.startswith("[") for v in output["age"].to_pylist())
    other = Mondrian(requirements=Requirements(k=4), columns=columns, random_state=2)
    assert other.fit_transform(table)["age"].to_pylist() != output["age"].to_pylist()
    kept = Columns(("age",), keep=("name",))
    assert (
        "name"
        in Mondrian(requirements=Requirements(k=4), columns=kept).fit_transform(table).column_names
    )


def test_suppression_drops_outliers_within_its_budget():
    """Ten rows of a rare category would widen every class; a 2 % budget drops them instead."""
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "age": rng.integers(20, 70, 1000),
            "country": ["US"] * 496 + ["CA"] * 496 + ["Nauru"] * 8,
            "disease": ["flu", "cold"] * 500,
        }
    )
    columns = Columns(("age", "country"), sensitive="disease")
    plain = Mondrian(requirements=Requirements(k=10), columns=columns).fit(table)
    trimmed = Mondrian(requirements=Requirements(k=10), columns=columns, suppression=0.02).fit(
        table
    )
    assert plain.report_.suppressed == 0
    assert 0 < trimmed.report_.suppressed <= 20
    output = trimmed.transform(table)
    assert output.num_rows == 1000 - trimmed.report_.suppressed
    assert check_anonymity(output, quasi_identifiers=("age", "country"), k=10).holds


def test_misuse_is_refused():
    """Unknown columns, impossible requirements, nulls and unfitted use fail clearly."""
    table = pa.table({"age": [30, 31, 32], "disease": ["flu", "flu", "flu"]})
    with pytest.raises(InvalidInput, match="no release is possible"):
        Mondrian(requirements=Requirements(k=2, l=2), columns=Columns(("age",), "disease")).fit(
            table
        )
    with pytest.raises(InvalidInput, match="not in the table"):
        Mondrian(requirements=Requirements(k=2), columns=Columns(("zip",))).fit(table)
    with pytest.raises(InvalidInput, match="sensitive column"):
        Mondrian(requirements=Requirements(k=2, l=2), columns=Columns(("age",)))
    with pytest.raises(InvalidInput):
        Requirements(k=0)
    with pytest.raises(InvalidInput):
        Requirements(k=2, t=0)
    with pytest.raises(NotFittedError):
        Mondrian(requirements=Requirements(k=2), columns=Columns(("age",))).transform(table)
    nulls = pa.table({"age": [30, None, 32]})
    with pytest.raises(InvalidInput, match="empty values"):
        Mondrian(requirements=Requirements(k=1), columns=Columns(("age",))).fit(nulls)


def test_hierarchy_files_and_mistakes(tmp_path):
    """ARX-style files load; ragged rows, two roots and duplicates are refused."""
    path = tmp_path / "city.csv"
    path.write_text("Paris;FR;*\nLyon;FR;*\nRome;IT;*\n")
    tree = Hierarchy.from_csv(path)
    assert tree.leaves == ("Paris", "Lyon", "Rome")
    assert tree.label(tree.common(0, 1)) == "FR" and tree.label(tree.common(0, 2)) == "*"
    for rows, message in (
        ([["a", "*"], ["b", "x", "*"]], "same number"),
        ([["a", "r1"], ["b", "r2"]], "one root"),
        ([["a", "*"], ["a", "*"]], "twice"),
    ):
        with pytest.raises(InvalidInput, match=message):
            Hierarchy.from_paths(rows)
    with pytest.raises(InvalidInput, match="no value"):
        tree.codes(["Berlin"])
