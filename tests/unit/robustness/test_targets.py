import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from bastion.robustness import PGD, QueryCounter, Threat, linear_module, numpy_predictor


def test_a_linear_model_becomes_a_module_with_its_exact_scores(digit_set):
    """Logits equal scikit-learn's decision function, so gradients are the analytic ones."""
    x, y = digit_set.x_train.numpy(), digit_set.y_train.numpy()
    model = LogisticRegression(max_iter=500).fit(x, y)
    module = linear_module(model)
    with torch.no_grad():
        logits = module(digit_set.x_test).numpy()
    np.testing.assert_allclose(logits, model.decision_function(digit_set.x_test.numpy()), atol=1e-4)
    x0 = digit_set.x_test[:1].clone().requires_grad_(True)
    module(x0)[0, 3].backward()
    np.testing.assert_allclose(x0.grad[0].numpy(), model.coef_[3], atol=1e-6)


def test_white_box_pgd_breaks_a_linear_model(digit_set, generator):
    """PGD with the linear model's gradients drives its accuracy down at ε = 0.2."""
    x, y = digit_set.x_train.numpy(), digit_set.y_train.numpy()
    module = linear_module(LogisticRegression(max_iter=500).fit(x, y))
    attack = PGD(Threat("linf", 0.2, digit_set.domain), steps=20)
    result = attack.run(module, digit_set.x_test, digit_set.y_test, generator=generator)
    assert result.success_rate > 0.9


def test_binary_linear_models_get_two_logits(digit_set):
    """A binary classifier (one coefficient row) yields two columns whose argmax is predict."""
    x, y = digit_set.x_train.numpy(), (digit_set.y_train.numpy() == 3)
    model = LogisticRegression(max_iter=500).fit(x, y)
    with torch.no_grad():
        labels = linear_module(model)(digit_set.x_test).argmax(dim=1).numpy()
    np.testing.assert_array_equal(labels, model.predict(digit_set.x_test.numpy()).astype(int))


def test_an_unfitted_estimator_is_refused():
    """linear_module needs coef_ and intercept_."""
    with pytest.raises(ValueError, match="coef_"):
        linear_module(LogisticRegression())


def test_numpy_predictors_are_counted():
    """A NumPy function becomes a predictor; the counter counts rows."""
    counter = QueryCounter(numpy_predictor(lambda x: np.stack([x.sum(1), -x.sum(1)], axis=1)))
    scores = counter(torch.ones(5, 3))
    assert scores.shape == (5, 2) and counter.queries == 5
