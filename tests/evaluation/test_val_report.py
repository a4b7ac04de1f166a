"""The val report: which images the grid shows, accuracy per class, and the five files it writes."""
import math

import numpy as np
import pandas as pd
import pytest

import evaluation.val_report
from evaluation.val_report import GRID_IMAGES, ValPredictions, grid_indices, per_class_accuracy, write_val_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASS_NAMES = ["cat", "dog", "bird"]


# --- grid_indices ---------------------------------------------------------------------------------

def test_grid_indices_are_the_same_on_every_call():
    np.testing.assert_array_equal(grid_indices(500), grid_indices(500))


def test_grid_indices_are_sorted_unique_and_inside_the_split():
    indices = grid_indices(500)
    assert len(indices) == GRID_IMAGES == 20
    assert list(indices) == sorted(set(indices.tolist()))
    assert indices.min() >= 0 and indices.max() < 500


def test_grid_indices_of_a_split_smaller_than_the_grid_are_all_its_images():
    assert grid_indices(7).tolist() == list(range(7))
    assert grid_indices(0).tolist() == []


def test_grid_indices_depend_on_the_seed():
    assert grid_indices(500, seed=1).tolist() != grid_indices(500, seed=0).tolist()


# --- per_class_accuracy ---------------------------------------------------------------------------

def test_per_class_accuracy_counts_images_and_correct_ones_per_true_class():
    targets = np.array([0, 0, 0, 0, 1, 1])
    predicted = np.array([0, 0, 0, 1, 0, 1])
    table = per_class_accuracy(targets, predicted, CLASS_NAMES)
    assert list(table.columns) == ["class", "name", "images", "correct", "acc1"]
    assert table["class"].tolist() == [0, 1, 2]
    assert table["name"].tolist() == CLASS_NAMES
    assert table["images"].tolist() == [4, 2, 0]
    assert table["correct"].tolist() == [3, 1, 0]
    assert table["acc1"].tolist()[:2] == [75.0, 50.0]


def test_per_class_accuracy_of_a_class_without_images_is_nan_not_zero():
    table = per_class_accuracy(np.array([0, 1]), np.array([0, 2]), CLASS_NAMES)
    assert table["acc1"].tolist()[:2] == [100.0, 0.0]
    assert math.isnan(table["acc1"].iloc[2])


# --- write_val_report -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A report over 25 val images of 3 classes, with a known set of wrong predictions; written
    once, since the tests only read it."""
    tmp_path = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    targets = np.arange(25) % 2  # "bird" (class 2) has no val image
    predicted = targets.copy()
    predicted[[1, 4, 10]] = 2
    confidence = rng.uniform(0.3, 1.0, size=25)
    predictions = ValPredictions(targets, predicted, confidence)
    indices = grid_indices(25)
    grid = rng.integers(0, 256, size=(len(indices), 3, 8, 8), dtype=np.uint8)
    paths = write_val_report(str(tmp_path), predictions, grid, CLASS_NAMES)
    return tmp_path, predictions, paths


def test_write_val_report_writes_the_three_pictures_and_returns_their_paths(report):
    folder, _, paths = report
    assert paths == {"predictions": str(folder / "predictions.png"), "confusion": str(folder / "confusion.png"),
                     "calibration": str(folder / "calibration.png")}
    for name in ("predictions.png", "confusion.png", "calibration.png"):
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    assert sorted(path.name for path in folder.iterdir()) == [
        "calibration.png", "confusion.png", "per_class.csv", "predictions.png", "val_predictions.csv"]


def test_per_class_csv_has_one_row_per_class_with_blank_accuracy_for_a_class_without_images(report):
    folder, _, _ = report
    table = pd.read_csv(folder / "per_class.csv")
    assert list(table.columns) == ["class", "name", "images", "correct", "acc1"]
    assert table["name"].tolist() == CLASS_NAMES
    assert table["images"].tolist() == [13, 12, 0]
    assert table["correct"].tolist() == [11, 11, 0]
    assert table["acc1"].iloc[:2].tolist() == pytest.approx([100 * 11 / 13, 100 * 11 / 12], abs=0.005)
    assert math.isnan(table["acc1"].iloc[2])


def test_val_predictions_csv_has_every_val_image_in_order_with_its_prediction_and_confidence(report):
    folder, predictions, _ = report
    table = pd.read_csv(folder / "val_predictions.csv")
    assert list(table.columns) == ["id", "true", "predicted", "confidence"]
    assert table["id"].tolist() == list(range(25))
    assert table["true"].tolist() == predictions.targets.tolist()
    assert table["predicted"].tolist() == predictions.predicted.tolist()
    assert table["confidence"].tolist() == pytest.approx(predictions.confidence.tolist(), abs=5e-5)


def test_the_prediction_grid_shows_the_grid_indices_with_their_true_and_predicted_names(tmp_path, monkeypatch):
    drawn = {}
    real_predictions_figure = evaluation.val_report.predictions_figure

    def record(images, true_names, predicted_names, columns=5, title=""):
        drawn.update(images=images, true=list(true_names), predicted=list(predicted_names), title=title)
        return real_predictions_figure(images, true_names, predicted_names, columns, title)

    monkeypatch.setattr(evaluation.val_report, "predictions_figure", record)
    monkeypatch.setattr(evaluation.val_report, "save_figure", lambda figure, path: None)
    targets = np.arange(30) % 3
    predicted = (targets + (np.arange(30) % 5 == 0)) % 3  # every fifth image is wrong
    grid = np.zeros((20, 3, 4, 4), np.uint8)
    write_val_report(str(tmp_path), ValPredictions(targets, predicted, np.ones(30)), grid, CLASS_NAMES)
    indices = grid_indices(30)
    assert drawn["images"] is grid
    assert drawn["true"] == [CLASS_NAMES[t] for t in targets[indices]]
    assert drawn["predicted"] == [CLASS_NAMES[p] for p in predicted[indices]]


def test_the_confusion_matrix_counts_true_classes_in_rows_and_predictions_in_columns(tmp_path, monkeypatch):
    matrices = []
    real_confusion_figure = evaluation.val_report.confusion_figure

    def record(matrix, class_names, title=""):
        matrices.append(matrix)
        return real_confusion_figure(matrix, class_names, title)

    monkeypatch.setattr(evaluation.val_report, "confusion_figure", record)
    monkeypatch.setattr(evaluation.val_report, "save_figure", lambda figure, path: None)
    targets, predicted = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    write_val_report(str(tmp_path), ValPredictions(targets, predicted, np.ones(5)),
                     np.zeros((5, 3, 4, 4), np.uint8), CLASS_NAMES)
    np.testing.assert_array_equal(matrices[0], [[1, 1, 0], [1, 2, 0], [0, 0, 0]])
