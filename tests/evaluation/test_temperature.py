"""Temperature scaling (Guo et al. 2017): one temperature fitted on val by LBFGS on the NLL."""
from __future__ import annotations

import numpy as np
import pytest

from config import get_config
from evaluation.calibration import fit_temperature, nll_at_temperature, tempered_probabilities
from utils.errors import UserError


def calibrated_case(num_images: int = 3000, num_classes: int = 10, seed: int = 0):
    """Logits and labels drawn from softmax(logits) itself: a perfectly calibrated model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(num_images, num_classes)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    targets = np.array([rng.choice(num_classes, p=row) for row in probs])
    return logits, targets


def test_an_overconfident_model_gets_a_temperature_above_one_that_lowers_the_val_nll():
    logits, targets = calibrated_case()
    overconfident = logits * 5
    temperature = fit_temperature(overconfident, targets)
    assert temperature > 1
    assert temperature == pytest.approx(5, rel=0.1)  # it undoes the scaling
    assert nll_at_temperature(overconfident, targets, temperature) < nll_at_temperature(overconfident, targets, 1.0)


def test_a_calibrated_model_keeps_a_temperature_near_one():
    logits, targets = calibrated_case(seed=1)
    assert fit_temperature(logits, targets) == pytest.approx(1, abs=0.1)


def test_tempered_probabilities_sum_to_one_and_keep_the_order_of_the_classes():
    log_probs = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32))
    assert np.allclose(tempered_probabilities(log_probs, 1.0), np.exp(log_probs), atol=1e-7)
    softened = tempered_probabilities(log_probs, 3.0)
    assert np.allclose(softened.sum(axis=1), 1, atol=1e-6)
    assert (softened.argsort(axis=1) == log_probs.argsort(axis=1)).all()
    assert softened.max(axis=1).tolist() < np.exp(log_probs).max(axis=1).tolist()


@pytest.mark.parametrize("typed, kept", [("auto", "auto"), ("Auto", "auto"), ("1.5", "1.5"), ("2", "2")])
def test_test_temperature_is_a_positive_number_or_auto(typed, kept):
    assert get_config(None, ["TEST.TEMPERATURE", typed]).TEST.TEMPERATURE == kept


@pytest.mark.parametrize("typed", ["0", "-1", "hot", "nan", "inf"])
def test_test_temperature_refuses_anything_else_naming_the_key(typed):
    with pytest.raises(UserError, match=f"TEST.TEMPERATURE .*'{typed}'"):
        get_config(None, ["TEST.TEMPERATURE", typed])
