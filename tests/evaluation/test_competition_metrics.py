"""The competition metrics of TEST.METRICS (macro-F1, log-loss, top-k accuracy, ECE) on fixed
inputs, and the best checkpoint chosen by them, each in its right direction."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, log_loss

from evaluation.calibration import ECE_BINS, expected_calibration_error, reliability_bins
from evaluation.competition_metrics import CompetitionMetrics, macro_f1, multiclass_log_loss, top_k_accuracy
from evaluation.plots import best_epoch
from evaluation.selection import BestSoFar, format_score

# Six images of three classes; no confidence sits on a bin edge (multiples of 1/15), and no top-2 is a tie.
PROBABILITIES = np.array([[0.70, 0.20, 0.10],   # class 0, right, confidence 0.70
                          [0.10, 0.85, 0.05],   # class 1, right, 0.85
                          [0.35, 0.45, 0.20],   # class 0, wrong (1), 0.45; class 0 is second
                          [0.25, 0.25, 0.50],   # class 2, right, 0.50
                          [0.52, 0.30, 0.18],   # class 2, wrong (0), 0.52; class 2 is last
                          [0.05, 0.90, 0.05]],  # class 1, right, 0.90
                         dtype=np.float32)
TARGETS = np.array([0, 1, 0, 2, 2, 1])
ALL = CompetitionMetrics(("macro_f1", "log_loss", "top_k_accuracy", "ece"), top_k=2)


def test_macro_f1_is_scikit_learns_and_the_mean_of_the_per_class_f1():
    # Class 0: P 1/2, R 1/2, F1 1/2; class 1: P 2/3, R 1, F1 4/5; class 2: P 1, R 1/2, F1 2/3.
    expected = (1 / 2 + 4 / 5 + 2 / 3) / 3
    assert macro_f1(PROBABILITIES, TARGETS) == pytest.approx(expected, abs=1e-12)
    assert macro_f1(PROBABILITIES, TARGETS) == f1_score(TARGETS, [0, 1, 1, 2, 0, 1], average="macro")


def test_log_loss_is_scikit_learns_and_the_mean_negative_log_probability_of_the_true_class():
    expected = -np.mean(np.log([0.70, 0.85, 0.35, 0.50, 0.18, 0.90]))
    assert multiclass_log_loss(PROBABILITIES, TARGETS) == pytest.approx(expected, rel=1e-6)
    assert multiclass_log_loss(PROBABILITIES, TARGETS) == log_loss(TARGETS, PROBABILITIES, labels=[0, 1, 2])


def test_log_loss_counts_every_class_even_those_no_val_image_has():
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]], dtype=np.float32)  # no image of class 2
    assert multiclass_log_loss(probabilities, np.array([0, 1])) == pytest.approx(-np.log([0.6, 0.7]).mean(), rel=1e-6)


def test_top_k_accuracy_is_the_percent_of_images_whose_class_is_among_the_k_most_probable():
    assert top_k_accuracy(PROBABILITIES, TARGETS, 1) == pytest.approx(100 * 4 / 6)
    assert top_k_accuracy(PROBABILITIES, TARGETS, 2) == pytest.approx(100 * 5 / 6)  # all but the fifth
    assert top_k_accuracy(PROBABILITIES, TARGETS, 3) == 100.0


def test_top_k_accuracy_of_two_classes():
    probabilities = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    assert top_k_accuracy(probabilities, np.array([0, 1, 1]), 1) == pytest.approx(100 * 2 / 3)
    assert top_k_accuracy(probabilities, np.array([0, 1, 1]), 2) == 100.0


def test_ece_is_the_image_weighted_gap_between_accuracy_and_confidence_in_15_bins():
    # Bins of width 1/15: 0.70, 0.85, 0.45 and 0.90 are alone in theirs; 0.50 (right) and 0.52
    # (wrong) share (7/15, 8/15]: accuracy 0.5 against confidence 0.51.
    expected = (abs(1 - 0.70) + abs(1 - 0.85) + abs(0 - 0.45) + 2 * abs(0.5 - 0.51) + abs(1 - 0.90)) / 6
    assert expected == pytest.approx(0.17)
    assert ALL.score(PROBABILITIES, TARGETS)["ece"] == pytest.approx(expected, rel=1e-6)
    confidences = PROBABILITIES.max(axis=1)
    assert expected_calibration_error(confidences, PROBABILITIES.argmax(axis=1) == TARGETS) == \
        pytest.approx(expected, rel=1e-6)


def test_reliability_bins_hold_count_accuracy_and_mean_confidence_per_bin():
    bins = reliability_bins(np.array([0.0, 0.05, 0.5, 0.52, 1.0]), np.array([False, True, True, False, True]))
    assert ECE_BINS == 15 and len(bins.edges) == 16 and bins.edges[0] == 0 and bins.edges[-1] == 1
    assert bins.counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1]  # 0 in the first bin, 1 in the last
    assert bins.accuracy[[0, 7, 14]].tolist() == [0.5, 0.5, 1.0]
    assert bins.confidence[[0, 7, 14]] == pytest.approx([0.025, 0.51, 1.0])
    assert np.isnan(bins.accuracy[1]) and np.isnan(bins.confidence[1])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=40))
def test_ece_sums_each_bins_gap_weighted_by_its_share_of_the_images(images):
    confidences = np.array([confidence for confidence, _ in images])
    correct = np.array([right for _, right in images])
    edges = np.linspace(0, 1, ECE_BINS + 1)
    expected = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidences > low) & (confidences <= high) | ((low == 0) & (confidences == 0))
        if inside.any():
            expected += inside.mean() * abs(correct[inside].mean() - confidences[inside].mean())
    ece = expected_calibration_error(confidences, correct)
    assert ece == pytest.approx(expected, abs=1e-12)
    assert 0 <= ece <= 1


def test_competition_metrics_score_only_the_names_asked_for():
    scores = CompetitionMetrics(("log_loss", "macro_f1")).score(PROBABILITIES, TARGETS)
    assert set(scores) == {"log_loss", "macro_f1"}


def test_probabilities_of_a_diverged_model_score_nan_rather_than_fail():
    probabilities = PROBABILITIES.copy()
    probabilities[2] = np.nan
    assert all(math.isnan(value) for value in ALL.score(probabilities, TARGETS).values())


# --- choosing best.pth by them --------------------------------------------------------------------

def epochs_of(metric: str, values: list[float]) -> list[dict]:
    return [{"model": {metric: value}} for value in values]


def test_selection_by_log_loss_picks_the_lowest():
    best = BestSoFar("val_log_loss")
    improved = [best.record(scores) for scores in epochs_of("log_loss", [0.9, 0.4, 0.6, 0.4])]
    assert improved == [True, True, False, False]  # a tie does not replace the best
    assert best.score == 0.4 and best.epochs_since == 2
    assert best.describe() == "log-loss 0.4000"


def test_selection_by_ece_picks_the_lowest_and_by_macro_f1_the_highest():
    ece, f1 = BestSoFar("val_ece"), BestSoFar("val_macro_f1")
    for scores in epochs_of("ece", [0.2, 0.05, 0.1]):
        ece.record(scores)
    for scores in epochs_of("macro_f1", [0.2, 0.05, 0.1]):
        f1.record(scores)
    assert ece.score == 0.05 and f1.score == 0.2


def test_selection_by_log_loss_picks_the_weights_with_the_lowest():
    best = BestSoFar("val_log_loss")
    best.record({"model": {"log_loss": 0.5}, "ema": {"log_loss": 0.3}, "swa": {"log_loss": 0.4}})
    assert (best.score, best.weights) == (0.3, "ema")


def test_a_nan_log_loss_is_never_the_best_once_an_epoch_has_a_number():
    best = BestSoFar("val_log_loss")
    assert [best.record(scores) for scores in epochs_of("log_loss", [math.nan, 0.8, math.nan])] == [True, True, False]
    assert best.score == 0.8


def test_top_k_accuracy_is_selected_upwards_and_logged_in_percent():
    best = BestSoFar("val_top_k_accuracy")
    for scores in epochs_of("top_k_accuracy", [90.0, 95.5, 93.0]):
        best.record(scores)
    assert best.score == 95.5
    assert format_score(95.5, "val_top_k_accuracy") == "95.50%"
    assert format_score(0.1234, "val_macro_f1") == "0.1234"


def test_curves_mark_the_epoch_with_the_lowest_log_loss_of_any_weights():
    rows = [{"epoch": 0, "val_log_loss": math.nan}, {"epoch": 1, "val_log_loss": 0.5, "val_log_loss_ema": 0.3},
            {"epoch": 2, "val_log_loss": 0.4}]
    assert best_epoch(rows, "val_log_loss") == (2, 0.3)  # a diverged epoch's NaN is no best
    assert best_epoch(rows, "val_macro_f1") is None


def test_summary_json_keeps_the_best_of_each_metric_in_its_direction_over_epochs_and_weights():
    from engine.summary import summarize
    epochs = [{"val_log_loss": math.nan, "val_macro_f1": 0.4},
              {"val_log_loss": 0.5, "val_log_loss_ema": 0.3, "val_macro_f1": 0.7, "val_ece": 0.2},
              {"val_log_loss": 0.4, "val_macro_f1": 0.6, "val_macro_f1_swa": 0.65, "val_ece": 0.1}]
    rows = [{"epoch": epoch, "val_acc1": 50.0, "epoch_time": 1.0, "images_per_sec": 10.0, **metrics}
            for epoch, metrics in enumerate(epochs)]
    summary = summarize(rows, "finished", 3, parameters=1, macs=1, changed_config={})
    assert (summary["best_val_log_loss"], summary["best_val_macro_f1"], summary["best_val_ece"]) == (0.3, 0.7, 0.1)
    assert "best_val_top_k_accuracy" not in summary
