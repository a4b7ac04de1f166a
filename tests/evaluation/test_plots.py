"""Every figure the project draws, checked through its matplotlib objects (axes, lines, titles,
legends), never its pixels; and save_figure writes a whole PNG and nothing else."""
import math
import os

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from evaluation.plots import (MAX_ANNOTATED_CLASSES, MAX_LABELLED_CLASSES, RIGHT_COLOR, WRONG_COLOR, best_epoch,
                              confusion_figure, curves_figure, lr_find_figure, predictions_figure, save_figure,
                              throughput_figure)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def metrics_rows(epochs=3, **extra):
    """Metrics rows as metrics.jsonl holds them (epoch counted from 0)."""
    return [{"epoch": epoch, "train_loss": 2.0 - 0.5 * epoch, "val_loss": 2.1 - 0.4 * epoch,
             "train_acc1": 30.0 + 10 * epoch, "val_acc1": 25.0 + 10 * epoch, **extra} for epoch in range(epochs)]


def legend_texts(axis):
    return [text.get_text() for text in axis.get_legend().get_texts()]


def data_lines(axis):
    """The metric curves of an axis, without the best-epoch line and star."""
    return [line for line in axis.get_lines() if not line.get_label().startswith("best")]


def tick_texts(labels):
    return [label.get_text() for label in labels]


def images(count, size=8):
    return np.random.default_rng(0).integers(0, 256, size=(count, 3, size, size), dtype=np.uint8)


# --- save_figure ----------------------------------------------------------------------------------

def test_save_figure_writes_a_png_and_leaves_no_temporary_file(tmp_path):
    figure = Figure()
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "picture.png"
    save_figure(figure, str(path))
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert os.listdir(tmp_path) == ["picture.png"]


def test_save_figure_replaces_an_existing_file(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"old")
    save_figure(Figure(), str(path))
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert os.listdir(tmp_path) == ["picture.png"]


# --- curves_figure --------------------------------------------------------------------------------

def test_curves_figure_has_a_loss_and_an_accuracy_axis_each_with_train_and_val_lines_over_epochs_from_1():
    rows = metrics_rows(epochs=3)
    figure = curves_figure(rows)
    assert isinstance(figure, Figure)
    loss_axis, acc_axis = figure.axes
    for axis, name in ((loss_axis, "loss"), (acc_axis, "acc1")):
        train, val = data_lines(axis)
        assert legend_texts(axis)[:2] == ["train", "val"]
        assert list(train.get_xdata()) == [1, 2, 3]
        assert list(val.get_xdata()) == [1, 2, 3]
        assert list(train.get_ydata()) == [row[f"train_{name}"] for row in rows]
        assert list(val.get_ydata()) == [row[f"val_{name}"] for row in rows]
        assert axis.get_xlabel() == "epoch"
    assert loss_axis.get_ylabel() == "loss (cross-entropy)"
    assert acc_axis.get_ylabel() == "acc@1 (%)"


# --- predictions_figure ---------------------------------------------------------------------------

def test_predictions_figure_titles_each_image_with_its_true_and_predicted_class():
    true = [f"class{i % 4}" for i in range(20)]
    predicted = [f"class{(i // 5) % 4}" for i in range(20)]
    figure = predictions_figure(images(20), true, predicted)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 20
    assert [axis.get_title() for axis in figure.axes] == [f"true: {t}\npred: {p}" for t, p in zip(true, predicted)]


def test_predictions_figure_colours_wrong_predictions_and_only_those():
    true = ["cat", "dog", "cat", "bird"]
    predicted = ["cat", "cat", "cat", "dog"]
    figure = predictions_figure(images(4), true, predicted)
    colours = [to_rgba(axis.title.get_color()) for axis in figure.axes]
    assert colours == [to_rgba(RIGHT_COLOR), to_rgba(WRONG_COLOR), to_rgba(RIGHT_COLOR), to_rgba(WRONG_COLOR)]
    assert to_rgba(figure.axes[1].spines["left"].get_edgecolor()) == to_rgba(WRONG_COLOR)
    assert to_rgba(figure.axes[0].spines["left"].get_edgecolor()) == to_rgba(RIGHT_COLOR)


def test_predictions_figure_shows_each_image_as_height_width_channels():
    grid = images(2, size=6)
    figure = predictions_figure(grid, ["a", "b"], ["a", "b"])
    shown = figure.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), grid[1].transpose(1, 2, 0))


def test_a_grid_of_7_images_leaves_no_empty_axes():
    figure = predictions_figure(images(7), ["a"] * 7, ["a"] * 7, columns=5)
    assert len(figure.axes) == 7
    assert all(axis.get_images() for axis in figure.axes)


# --- confusion_figure -----------------------------------------------------------------------------

def test_confusion_figure_names_the_classes_along_both_axes_and_writes_the_counts_when_few():
    names = ["cat", "dog", "bird"]
    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 4]])
    figure = confusion_figure(matrix, names)
    assert isinstance(figure, Figure)
    axis = figure.axes[0]  # the other axis is the colour bar
    assert tick_texts(axis.get_xticklabels()) == names
    assert tick_texts(axis.get_yticklabels()) == names
    assert (axis.get_xlabel(), axis.get_ylabel()) == ("predicted class", "true class")
    assert sorted(int(text.get_text()) for text in axis.texts) == sorted(matrix.ravel().tolist())


def test_confusion_figure_colours_each_cell_by_its_share_of_the_true_class():
    matrix = np.array([[3, 1], [0, 0]])
    figure = confusion_figure(matrix, ["a", "b"])
    shares = np.asarray(figure.axes[0].get_images()[0].get_array())
    np.testing.assert_allclose(shares, [[0.75, 0.25], [0.0, 0.0]])


def test_confusion_figure_leaves_out_the_counts_above_max_annotated_classes_but_keeps_the_names():
    count = MAX_ANNOTATED_CLASSES + 1
    figure = confusion_figure(np.eye(count, dtype=int), [f"c{i}" for i in range(count)])
    assert len(figure.axes[0].texts) == 0
    assert tick_texts(figure.axes[0].get_xticklabels()) == [f"c{i}" for i in range(count)]


def test_confusion_figure_leaves_out_the_class_names_above_max_labelled_classes():
    count = MAX_LABELLED_CLASSES + 1
    figure = confusion_figure(np.eye(count, dtype=int), [f"c{i}" for i in range(count)])
    figure.draw_without_rendering()  # default tick labels get their text when drawn
    labels = tick_texts(figure.axes[0].get_xticklabels())
    assert labels and not any(label.startswith("c") for label in labels)


# --- throughput_figure ----------------------------------------------------------------------------

def test_throughput_figure_plots_loader_and_model_images_per_second_on_a_log2_batch_size_axis():
    rows = [{"batch_size": size, "loader_images_per_sec": 10.0 * size, "model_images_per_sec": 20.0 * size}
            for size in (1, 2, 4, 8)]
    figure = throughput_figure(rows)
    assert isinstance(figure, Figure)
    axis, = figure.axes
    assert axis.get_xscale() == "log"
    assert axis.xaxis.get_transform().base == 2
    loader, model = axis.get_lines()
    assert list(loader.get_xdata()) == [1, 2, 4, 8]
    assert list(loader.get_ydata()) == [10.0, 20.0, 40.0, 80.0]
    assert list(model.get_ydata()) == [20.0, 40.0, 80.0, 160.0]
    assert legend_texts(axis) == ["with the data loader", "model alone (synthetic batches)"]


def test_throughput_figure_ticks_each_batch_size_as_a_whole_number_under_a_title(tmp_path):
    rows = [{"batch_size": size, "loader_images_per_sec": 10.0 * size, "model_images_per_sec": 20.0 * size}
            for size in (1, 2, 4, 8, 16, 32, 64)]
    figure = throughput_figure(rows, "resnet18 on cifar10, 32 px | cuda:0, bfloat16")
    save_figure(figure, str(tmp_path / "throughput.png"))  # draws, so that the tick labels are final
    axis, = figure.axes
    assert list(axis.get_xticks()) == [1, 2, 4, 8, 16, 32, 64]
    assert [label.get_text() for label in axis.get_xticklabels()] == ["1", "2", "4", "8", "16", "32", "64"]
    assert [label.get_text() for label in axis.get_xticklabels(minor=True)] == [""] * len(axis.get_xticks(minor=True))
    assert axis.get_title() == "resnet18 on cifar10, 32 px | cuda:0, bfloat16"


def test_curves_figure_is_titled_with_its_run():
    rows = [{"epoch": 0, "train_loss": 2.0, "val_loss": 1.9, "train_acc1": 20.0, "val_acc1": 25.0}]
    assert curves_figure(rows, "lenet_digits/run: lenet on digits").get_suptitle() == "lenet_digits/run: lenet on digits"
    assert curves_figure(rows).get_suptitle() == ""


# --- lr_find_figure -------------------------------------------------------------------------------

def test_lr_find_figure_plots_loss_against_a_log_lr_axis_and_marks_the_suggestion_with_a_vertical_line():
    lrs = [10.0 ** exponent for exponent in range(-6, 1)]
    losses = [2.3, 2.3, 2.2, 1.5, 0.9, 1.2, 5.0]
    figure = lr_find_figure(lrs, losses, suggestion=1e-3)
    assert isinstance(figure, Figure)
    axis, = figure.axes
    assert axis.get_xscale() == "log"
    curve, marker = axis.get_lines()
    assert list(curve.get_xdata()) == lrs
    assert list(curve.get_ydata()) == losses
    assert list(marker.get_xdata()) == [1e-3, 1e-3]
    assert to_rgba(marker.get_color()) == to_rgba(WRONG_COLOR)
    assert legend_texts(axis) == ["smoothed train loss", "suggested LR 1.00e-03"]


def test_lr_find_figure_without_a_suggestion_draws_only_the_curve():
    figure = lr_find_figure([1e-3, 1e-2, 1e-1], [1.0, 0.5, math.inf], suggestion=None)
    assert len(figure.axes[0].get_lines()) == 1
    assert legend_texts(figure.axes[0]) == ["smoothed train loss"]


def test_curves_figure_adds_the_ema_and_swa_val_lines_where_the_rows_have_them():
    rows = metrics_rows(epochs=3)
    for row in rows:
        row.update(val_loss_ema=row["val_loss"] / 2, val_acc1_ema=row["val_acc1"] + 1)
    rows[-1].update(val_loss_swa=0.1, val_acc1_swa=99.0)
    loss_axis, acc_axis = curves_figure(rows).axes
    assert legend_texts(acc_axis)[:4] == ["train", "val", "val (EMA)", "val (SWA)"]
    _, _, ema, swa = data_lines(acc_axis)
    assert list(ema.get_xdata()) == [1, 2, 3] and list(ema.get_ydata()) == [row["val_acc1"] + 1 for row in rows]
    assert list(swa.get_xdata()) == [3] and list(swa.get_ydata()) == [99.0]
    assert loss_axis.get_ylabel() == "loss (cross-entropy)" and acc_axis.get_ylabel() == "acc@1 (%)"
    assert legend_texts(acc_axis)[4:] == ["best.pth (epoch 3)", "best val acc1 99"]  # the SWA weights won


def test_curves_figure_gives_a_train_loss_that_is_not_the_val_loss_its_own_labelled_graph():
    rows = [dict(row, train_loss=37.0 - 10 * row["epoch"], val_loss=0.1 + 0.01 * row["epoch"]) for row in metrics_rows()]
    train_axis, val_axis, acc_axis = curves_figure(rows, train_loss="arcface").axes
    assert train_axis.get_ylabel() == "train loss (arcface)" and val_axis.get_ylabel() == "val loss (cross-entropy)"
    assert [list(line.get_ydata()) for line in data_lines(train_axis)] == [[37.0, 27.0, 17.0]]
    assert [list(line.get_ydata()) for line in data_lines(val_axis)] == [[row["val_loss"] for row in rows]]
    assert acc_axis.get_ylabel() == "acc@1 (%)"


def test_curves_figure_draws_verification_and_marks_the_epoch_best_pth_came_from():
    rows = metrics_rows(epochs=4)
    for row, auc, eer in zip(rows, (0.80, 0.90, 0.95, 0.93), (0.30, 0.20, 0.10, 0.12)):
        row.update(verify_auc=auc, verify_eer=eer)
    figure = curves_figure(rows, select_metric="verify_auc")
    verify_axis = figure.axes[-1]
    assert verify_axis.get_ylabel() == "verification AUC, EER"
    auc, eer = data_lines(verify_axis)
    assert list(auc.get_ydata()) == [0.80, 0.90, 0.95, 0.93] and list(eer.get_ydata()) == [0.30, 0.20, 0.10, 0.12]
    assert legend_texts(verify_axis) == ["AUC", "EER", "best.pth (epoch 3)", "best verify auc 0.95"]
    star = [line for line in verify_axis.get_lines() if line.get_marker() == "*"][0]
    assert list(star.get_xdata()) == [3] and list(star.get_ydata()) == [0.95]
    for axis in figure.axes:  # the best epoch is marked in every graph
        assert "best.pth (epoch 3)" in legend_texts(axis)


def test_best_epoch_follows_the_select_metric_and_takes_the_first_of_a_tie():
    rows = [{"epoch": 0, "val_acc1": 50.0, "verify_eer": 0.2}, {"epoch": 1, "val_acc1": 60.0, "verify_eer": 0.1},
            {"epoch": 2, "val_acc1": 60.0, "val_acc1_ema": 55.0, "verify_eer": 0.15}]
    assert best_epoch(rows, "val_acc1") == (2, 60.0)
    assert best_epoch(rows, "verify_eer") == (2, 0.1)
    assert best_epoch(rows, "verify_auc") is None


def test_curves_figure_keeps_an_accuracy_axis_at_least_one_point_tall():
    rows = [{"epoch": epoch, "train_loss": 1.0, "val_loss": 1.0, "train_acc1": 99.99, "val_acc1": 99.995}
            for epoch in range(3)]
    bottom, top = curves_figure(rows).axes[1].get_ylim()
    assert top - bottom >= 1.0
