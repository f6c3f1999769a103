"""A synthetic table shaped like UCI Adult, generated from a seed (nothing is downloaded).

Eight quasi-identifiers (age, workclass, education, marital status, occupation, race,
sex, native country) with Adult-like marginals and a few of its correlations
(education with occupation and income, age with marital status), a sensitive ``income``
and a numeric ``hours`` column; hierarchies for every categorical quasi-identifier.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from bastion.privacy.anonymity.hierarchy import Hierarchy

QUASI_IDENTIFIERS = (
    "age",
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "race",
    "sex",
    "native_country",
)

# value: (weight, parent) for each categorical column; parents form the first level.
_DOMAINS: dict[str, dict[str, tuple[float, str]]] = {
    "workclass": {
        "Private": (70, "Private"),
        "Self-emp-not-inc": (8, "Self-employed"),
        "Self-emp-inc": (3, "Self-employed"),
        "Federal-gov": (3, "Government"),
        "Local-gov": (6, "Government"),
        "State-gov": (4, "Government"),
        "Without-pay": (1, "Unpaid"),
        "Never-worked": (1, "Unpaid"),
    },
    "education": {
        "Preschool": (1, "Primary"),
        "1st-4th": (1, "Primary"),
        "5th-6th": (1, "Primary"),
        "7th-8th": (2, "Secondary"),
        "9th": (2, "Secondary"),
        "10th": (3, "Secondary"),
        "11th": (4, "Secondary"),
        "12th": (1, "Secondary"),
        "HS-grad": (32, "High school"),
        "Some-college": (22, "College"),
        "Assoc-voc": (4, "College"),
        "Assoc-acdm": (3, "College"),
        "Bachelors": (16, "University"),
        "Masters": (5, "University"),
        "Prof-school": (2, "University"),
        "Doctorate": (1, "University"),
    },
    "marital_status": {
        "Married-civ-spouse": (46, "Married"),
        "Married-AF-spouse": (1, "Married"),
        "Married-spouse-absent": (1, "Married"),
        "Never-married": (33, "Never married"),
        "Divorced": (14, "Previously married"),
        "Separated": (3, "Previously married"),
        "Widowed": (3, "Previously married"),
    },
    "occupation": {
        "Prof-specialty": (13, "White collar"),
        "Exec-managerial": (13, "White collar"),
        "Adm-clerical": (12, "White collar"),
        "Sales": (11, "White collar"),
        "Tech-support": (3, "White collar"),
        "Craft-repair": (13, "Blue collar"),
        "Machine-op-inspct": (6, "Blue collar"),
        "Transport-moving": (5, "Blue collar"),
        "Handlers-cleaners": (4, "Blue collar"),
        "Farming-fishing": (3, "Blue collar"),
        "Other-service": (10, "Service"),
        "Protective-serv": (2, "Service"),
        "Priv-house-serv": (1, "Service"),
        "Armed-Forces": (1, "Service"),
    },
    "race": {
        "White": (85, "White"),
        "Black": (10, "Other"),
        "Asian-Pac-Islander": (3, "Other"),
        "Amer-Indian-Eskimo": (1, "Other"),
        "Other": (1, "Other"),
    },
    "sex": {"Male": (67, "Male"), "Female": (33, "Female")},
    "native_country": {
        "United-States": (890, "North America"),
        "Canada": (4, "North America"),
        "Mexico": (20, "Latin America"),
        "Puerto-Rico": (4, "Latin America"),
        "Cuba": (3, "Latin America"),
        "Jamaica": (3, "Latin America"),
        "El-Salvador": (3, "Latin America"),
        "Dominican-Republic": (2, "Latin America"),
        "Guatemala": (2, "Latin America"),
        "Columbia": (2, "Latin America"),
        "Philippines": (6, "Asia"),
        "India": (3, "Asia"),
        "China": (2, "Asia"),
        "Vietnam": (2, "Asia"),
        "Japan": (2, "Asia"),
        "Taiwan": (1, "Asia"),
        "Iran": (1, "Asia"),
        "Germany": (4, "Europe"),
        "England": (3, "Europe"),
        "Italy": (2, "Europe"),
        "Poland": (2, "Europe"),
        "Portugal": (1, "Europe"),
        "France": (1, "Europe"),
        "Greece": (1, "Europe"),
        "Ireland": (1, "Europe"),
    },
}
_SKILLED = {"Bachelors", "Masters", "Prof-school", "Doctorate"}


def synthetic_adult(rows: int, *, seed: int) -> pa.Table:
    """``rows`` Adult-like records; the same seed gives the same table."""
    rng = np.random.default_rng(seed)
    age = np.clip(rng.gamma(6.0, 6.5, rows) + 17, 17, 90).astype(np.int64)
    picked = {name: _draw(rng, domain, rows) for name, domain in _DOMAINS.items()}
    picked["marital_status"][(age < 24) & (rng.random(rows) < 0.8)] = "Never-married"  # noqa: PLR2004
    skilled = np.isin(picked["education"], sorted(_SKILLED))
    picked["occupation"][skilled & (rng.random(rows) < 0.5)] = "Prof-specialty"  # noqa: PLR2004
    rich = rng.random(rows) < np.where(skilled, 0.45, 0.15) * np.where(age > 35, 1.4, 0.6)  # noqa: PLR2004
    hours = np.clip(rng.normal(40, 12, rows), 1, 99).astype(np.int64)
    return pa.table(
        {
            "age": age,
            **{name: pa.array(values, pa.string()) for name, values in picked.items()},
            "income": pa.array(np.where(rich, ">50K", "<=50K"), pa.string()),
            "hours": hours,
        }
    )


def _draw(
    rng: np.random.Generator, domain: dict[str, tuple[float, str]], rows: int
) -> NDArray[np.object_]:
    values = np.array(list(domain), dtype=object)
    weights = np.array([weight for weight, _ in domain.values()], dtype=np.float64)
    return values[rng.choice(len(values), rows, p=weights / weights.sum())]


def adult_hierarchies() -> dict[str, Hierarchy]:
    """Three-level hierarchies (value, group, ``*``) for the categorical quasi-identifiers."""
    return {
        name: Hierarchy.from_paths([value, parent, "*"] for value, (_, parent) in domain.items())
        for name, domain in _DOMAINS.items()
    }
