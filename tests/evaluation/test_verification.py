"""Face-verification metrics (evaluation/verification.py) against closed forms for Gaussian scores and
hand-worked examples, and the ROC figure (utils/plots.roc_figure)."""
import math

import numpy as np
import pytest

from evaluation.plots import MIN_ROC_FPR, roc_figure
from evaluation.verification import VerificationResult, pair_similarities, verification_metrics

try:
    from scipy.stats import norm

    normal_cdf, normal_quantile = norm.cdf, norm.ppf
except ImportError:  # scipy comes with scikit-learn, but the closed forms need only the normal CDF
    def normal_cdf(x):
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    def normal_quantile(p):
        low, high = -10.0, 10.0
        for _ in range(200):
            middle = (low + high) / 2
            low, high = (middle, high) if normal_cdf(middle) < p else (low, middle)
        return (low + high) / 2

PAIRS_PER_KIND = 200_000


def gaussian_scores(genuine_mean, impostor_mean, sigma, seed=0):
    """(similarities, same): PAIRS_PER_KIND genuine scores N(genuine_mean, sigma), then as many impostor
    scores N(impostor_mean, sigma)."""
    rng = np.random.default_rng(seed)
    similarities = np.concatenate([rng.normal(genuine_mean, sigma, PAIRS_PER_KIND),
                                   rng.normal(impostor_mean, sigma, PAIRS_PER_KIND)])
    same = np.repeat([True, False], PAIRS_PER_KIND)
    return similarities, same


def accuracy_at(similarities, same, threshold):
    return np.mean((np.asarray(similarities) >= threshold) == np.asarray(same))


# --- verification_metrics: closed forms ------------------------------------------------------------

def test_eer_auc_and_accuracy_of_two_equal_width_gaussians_match_their_closed_forms():
    genuine_mean, impostor_mean, sigma = 0.5, 0.1, 0.2  # d' = 2
    similarities, same = gaussian_scores(genuine_mean, impostor_mean, sigma)
    result = verification_metrics(similarities, same)
    separation = (genuine_mean - impostor_mean) / sigma
    assert result.eer == pytest.approx(normal_cdf(-separation / 2), abs=0.005)
    assert result.auc == pytest.approx(normal_cdf(separation / math.sqrt(2)), abs=0.005)
    # Equal priors and widths: the best threshold is the midpoint, where accuracy is 1 - EER.
    assert result.accuracy == pytest.approx(normal_cdf(separation / 2), abs=0.005)
    assert result.threshold == pytest.approx((genuine_mean + impostor_mean) / 2, abs=0.04)
    assert accuracy_at(similarities, same, result.threshold) == pytest.approx(result.accuracy, abs=1e-12)


def test_tar_at_far_1e3_of_two_gaussians_matches_the_closed_form():
    # A wide separation puts the FAR 1e-3 threshold on the genuine tail, where the sampling error of that
    # threshold barely moves TAR.
    genuine_mean, impostor_mean, sigma, far = 0.6, -0.4, 0.2, 1e-3
    similarities, same = gaussian_scores(genuine_mean, impostor_mean, sigma, seed=1)
    result = verification_metrics(similarities, same, far=far)
    threshold = impostor_mean + sigma * normal_quantile(1 - far)
    assert result.far == far
    assert result.tar == pytest.approx(1 - normal_cdf((threshold - genuine_mean) / sigma), abs=0.01)


def test_tar_is_read_at_the_last_roc_point_within_the_far_target():
    result = verification_metrics(*gaussian_scores(0.5, 0.1, 0.2, seed=2), far=1e-2)
    within = result.fpr <= 1e-2
    assert result.tar == result.tpr[within][-1]


# --- verification_metrics: hand-worked examples -----------------------------------------------------

def test_perfectly_separated_scores_give_auc_1_eer_0_tar_1_accuracy_1_and_a_threshold_between_the_groups():
    rng = np.random.default_rng(3)
    genuine, impostor = rng.uniform(0.6, 1.0, 500), rng.uniform(-1.0, 0.4, 700)
    result = verification_metrics(np.concatenate([impostor, genuine]), np.repeat([0, 1], [700, 500]))
    assert (result.auc, result.eer, result.tar, result.accuracy) == (1.0, 0.0, 1.0, 1.0)
    assert impostor.max() < result.threshold <= genuine.min()


def test_six_scores_give_the_best_accuracy_and_the_threshold_of_that_same_roc_point():
    # Thresholds 0.9, 0.7, 0.6, 0.5, 0.3, 0.1 call 4, 3, 4, 5, 4, 3 of the 6 pairs right: one best, at 0.5.
    similarities = [0.9, 0.6, 0.5, 0.7, 0.3, 0.1]
    same = [True, True, True, False, False, False]
    result = verification_metrics(similarities, same)
    assert result.accuracy == pytest.approx(5 / 6)
    assert result.threshold == 0.5
    assert result.eer == pytest.approx(1 / 3)  # FPR = FNR = 1/3 exactly at (FPR 1/3, TPR 2/3)
    assert result.tar == pytest.approx(1 / 3)  # FPR 0 holds only the top genuine score


def test_eer_is_interpolated_where_fpr_jumps_over_fnr():
    # The tie at 0.5 jumps from (FPR 0, FNR 0.5) to (FPR 0.5, FNR 0); the straight line between crosses at 0.25.
    result = verification_metrics([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
    assert result.eer == pytest.approx(0.25)


def test_when_rejecting_every_pair_is_best_the_threshold_is_finite_and_rejects_every_pair():
    similarities, same = [0.1, 0.2, 0.7, 0.8, 0.9], [1, 1, 0, 0, 0]
    result = verification_metrics(similarities, same)
    assert result.accuracy == pytest.approx(3 / 5)
    assert math.isfinite(result.threshold) and result.threshold > 0.9
    assert accuracy_at(similarities, same, result.threshold) == pytest.approx(result.accuracy)


def test_metrics_are_flat_floats_under_the_prefix():
    result = verification_metrics([0.9, 0.6, 0.5, 0.7, 0.3, 0.1], [1, 1, 1, 0, 0, 0])
    metrics = result.metrics()
    assert metrics == {"verify_auc": result.auc, "verify_eer": result.eer, "verify_tar": result.tar,
                       "verify_acc": result.accuracy, "verify_threshold": result.threshold}
    assert all(type(value) is float for value in metrics.values())
    assert set(result.metrics("val_")) == {"val_auc", "val_eer", "val_tar", "val_acc", "val_threshold"}


def test_the_roc_curve_is_kept_for_plotting():
    result = verification_metrics([0.9, 0.6, 0.5, 0.7, 0.3, 0.1], [1, 1, 1, 0, 0, 0])
    assert isinstance(result, VerificationResult)
    assert len(result.fpr) == len(result.tpr) == 7  # every distinct score, plus the start at (0, 0)
    assert (result.fpr[0], result.tpr[0], result.fpr[-1], result.tpr[-1]) == (0, 0, 1, 1)


# --- verification_metrics: refusals -------------------------------------------------------------------

@pytest.mark.parametrize("same", [[1, 1, 1], [False, False, False]])
def test_pairs_of_one_kind_only_are_refused(same):
    with pytest.raises(ValueError, match="pairs of both kinds"):
        verification_metrics([0.1, 0.5, 0.9], same)


def test_similarities_and_labels_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="of one length"):
        verification_metrics([0.1, 0.5, 0.9], [1, 0])


def test_labels_other_than_0_and_1_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        verification_metrics([0.1, 0.5, 0.9], [1, 2, 2])


# --- pair_similarities -----------------------------------------------------------------------------------

def test_pair_similarities_are_the_cosines_of_the_indexed_rows_and_zero_for_a_zero_row():
    embeddings = np.array([[3, 4], [0, 2], [0, 0], [-6, -8]], dtype=np.float32)
    similarities = pair_similarities(embeddings, np.array([0, 0, 0, 1, 3]), np.array([1, 3, 2, 1, 0]))
    assert similarities.dtype == np.float64
    np.testing.assert_allclose(similarities, [0.8, -1.0, 0.0, 1.0, -1.0], atol=1e-12)


def test_pair_similarities_ignore_the_length_of_the_embeddings():
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(10, 16))
    first, second = rng.integers(0, 10, 50), rng.integers(0, 10, 50)
    scaled = embeddings * rng.uniform(0.1, 10, (10, 1))
    np.testing.assert_allclose(pair_similarities(scaled, first, second),
                               pair_similarities(embeddings, first, second), atol=1e-12)


# --- roc_figure ---------------------------------------------------------------------------------------------

def test_roc_figure_draws_one_line_per_curve_and_the_diagonal_on_a_log_fpr_axis_with_auc_and_eer_in_the_legend():
    result = verification_metrics([0.9, 0.6, 0.5, 0.7, 0.3, 0.1], [1, 1, 1, 0, 0, 0])
    figure = roc_figure({"resnet18": (result.fpr, result.tpr, 0.987, 0.042),
                         "convnext": (result.fpr, result.tpr, result.auc, result.eer)})
    axis, = figure.axes
    assert len(axis.get_lines()) == 3
    legend = [text.get_text() for text in axis.get_legend().get_texts()]
    assert legend[0] == "resnet18 (AUC 0.987, EER 4.2%)"
    assert legend[1] == f"convnext (AUC {result.auc:.3f}, EER 33.3%)"
    assert axis.get_xscale() == "log"
    assert axis.get_xlim() == pytest.approx((MIN_ROC_FPR, 1))
    assert axis.get_lines()[0].get_xdata().min() == MIN_ROC_FPR  # FPR 0 drawn on the axis edge
    diagonal = axis.get_lines()[2]
    np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
