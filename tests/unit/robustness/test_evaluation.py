import json
import re

import pytest

from bastion.robustness import Evaluation, EvaluationPlan, TrainingPlan, evaluate, scores_of, train
from bastion.robustness.report import write_report

PLAN = EvaluationPlan(
    linf=(0.05, 0.1), l2=(1.0,), samples=60, steps=10, square_queries=100, boundary_iterations=4
)


@pytest.fixture(scope="module")
def found(mlp, digit_set):
    return evaluate(
        mlp,
        digit_set.x_test,
        digit_set.y_test,
        domain=digit_set.domain,
        plan=PLAN,
        names=("mlp", "digits"),
        shape=digit_set.shape,
    )


def test_a_white_box_evaluation_runs_every_attack_at_every_budget(found):
    """Five L∞ attacks per ε, three L2 attacks per ε; the worst case is the minimum."""
    attacks = {(p.attack, p.norm, p.epsilon) for p in found.points}
    assert {a for a, n, _ in attacks if n == "linf"} == {
        "fgsm",
        "pgd",
        "pgd-margin",
        "apgd-dlr",
        "square",
    }
    assert {a for a, n, _ in attacks if n == "l2"} == {"pgd", "cw", "hopskipjump"}
    for norm, eps in (("linf", 0.05), ("linf", 0.1), ("l2", 1.0)):
        at = [p.robust_accuracy for p in found.points if p.norm == norm and p.epsilon == eps]
        assert found.worst(norm, eps) == min(at) <= found.clean_accuracy
    assert found.verdict[0].startswith("Clean accuracy") and found.white_box


def test_the_json_form_round_trips(found):
    """to_json / from_json keep every figure and sentence."""
    again = Evaluation.from_json(json.loads(json.dumps(found.to_json())))
    assert again == found
    with pytest.raises(ValueError, match="not a Bastion robustness evaluation"):
        Evaluation.from_json({"model": "x"})


def test_distillation_is_called_out_as_gradient_masking(digit_set):
    """Distillation resists cross-entropy PGD, not margin attacks; the verdict says so."""
    plan = TrainingPlan(defense="distillation", epochs=10, learning_rate=1e-2)
    distilled = train(digit_set, plan).model
    masked = evaluate(
        distilled,
        digit_set.x_test,
        digit_set.y_test,
        domain=digit_set.domain,
        plan=EvaluationPlan(linf=(0.1,), l2=(), samples=200, square_queries=200),
    )
    at = {p.attack: p.robust_accuracy for p in masked.points}
    assert at["pgd"] > at["pgd-margin"] + 0.2
    assert any(line.startswith("Gradient masking suspected") for line in masked.verdict)


def test_a_black_box_gets_the_black_box_attacks_and_says_so(mlp, digit_set):
    """A predictor (no gradients) faces Square and HopSkipJump only."""
    found = evaluate(
        scores_of(mlp),
        digit_set.x_test,
        digit_set.y_test,
        domain=digit_set.domain,
        plan=PLAN,
        shape=digit_set.shape,
    )
    assert {p.attack for p in found.points} == {"square", "hopskipjump"}
    assert not found.white_box and any(line.startswith("Black box only") for line in found.verdict)
    assert all(p.queries > 0 for p in found.points)


def test_the_report_has_plots_a_table_and_the_verdict(found, tmp_path):
    """robustness.html embeds one plot per norm and every figure; robustness.json parses."""
    json_path, html_path = write_report(found, tmp_path / "report")
    page = html_path.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    assert found.verdict[0] in page and page.count("<tr>") == len(found.points) + 1
    assert Evaluation.from_json(json.loads(json_path.read_text())) == found


def test_a_bad_plan_is_refused():
    """Budgets must be positive; counts at least one."""
    for bad in ({"linf": (0.0,)}, {"samples": 0}, {"steps": 0}):
        with pytest.raises(ValueError, match=r"positive|at least"):
            EvaluationPlan(**bad)
