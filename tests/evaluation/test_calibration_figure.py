"""The reliability diagram (calibration.png of the val report): a bar of accuracy per confidence
bin against the diagonal, the ECE in the legend; read from its matplotlib objects."""
import numpy as np
import pytest
from matplotlib.patches import Rectangle

import evaluation.val_report
from evaluation.calibration import expected_calibration_error
from evaluation.plots import reliability_figure
from evaluation.val_report import ValPredictions, write_val_report

# Confidence 0.95 right twice and wrong once (bin (14/15, 1]); 0.5 right, 0.52 wrong (bin (7/15, 8/15]).
CONFIDENCES = np.array([0.95, 0.95, 0.95, 0.50, 0.52])
CORRECT = np.array([True, True, False, True, False])


def bars(figure):
    axis = figure.axes[0]
    return sorted((patch.get_x(), patch.get_width(), patch.get_height()) for patch in axis.patches
                  if isinstance(patch, Rectangle))


def test_each_filled_bin_is_a_bar_as_high_as_its_accuracy_and_as_wide_as_the_bin():
    drawn = bars(reliability_figure(CONFIDENCES, CORRECT))
    assert [x for x, _, _ in drawn] == pytest.approx([7 / 15, 14 / 15])
    assert [width for _, width, _ in drawn] == pytest.approx([1 / 15, 1 / 15])
    assert [height for _, _, height in drawn] == pytest.approx([0.5, 2 / 3])


def test_the_diagram_draws_the_diagonal_of_perfect_calibration_on_unit_axes():
    axis = reliability_figure(CONFIDENCES, CORRECT).axes[0]
    assert any(list(line.get_xdata()) == [0, 1] and list(line.get_ydata()) == [0, 1] for line in axis.lines)
    assert axis.get_xlim() == (0, 1) and axis.get_ylim() == (0, 1)


def test_the_legend_gives_the_expected_calibration_error():
    ece = expected_calibration_error(CONFIDENCES, CORRECT)
    assert ece == pytest.approx((3 * abs(2 / 3 - 0.95) + 2 * abs(0.5 - 0.51)) / 5)
    legend = [text.get_text() for text in reliability_figure(CONFIDENCES, CORRECT).axes[0].get_legend().get_texts()]
    assert any(f"{ece:.4f}" in text and "ECE" in text for text in legend)


def test_the_number_of_bins_can_be_chosen():
    assert len(bars(reliability_figure(np.array([0.1, 0.3, 0.6, 0.9]), np.ones(4, bool), bins=2))) == 2


def test_the_val_report_draws_the_diagram_from_each_images_confidence_and_correctness(tmp_path, monkeypatch):
    drawn = {}
    real = evaluation.val_report.reliability_figure

    def record(confidences, correct, bins=15, title=""):
        drawn.update(confidences=np.asarray(confidences), correct=np.asarray(correct), title=title)
        return real(confidences, correct, bins, title)

    monkeypatch.setattr(evaluation.val_report, "reliability_figure", record)
    targets, predicted = np.array([0, 1, 1, 0, 2]), np.array([0, 1, 0, 0, 2])
    paths = write_val_report(str(tmp_path), ValPredictions(targets, predicted, CONFIDENCES),
                             np.zeros((5, 3, 4, 4), np.uint8), ["a", "b", "c"], title="run: lenet on digits")
    np.testing.assert_array_equal(drawn["confidences"], CONFIDENCES)
    assert drawn["correct"].tolist() == [True, True, False, True, True]
    assert "run: lenet on digits" in drawn["title"]
    assert paths["calibration"] == str(tmp_path / "calibration.png")
    assert (tmp_path / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
