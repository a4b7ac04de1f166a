"""The comparison of runs as a picture: one graph per metric and one legend below them that never
covers a graph (checked geometrically, through the renderer's window extents), axes that a
diverged run cannot flatten, a minimum accuracy span, and the per-step overlay."""
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from evaluation.comparison_figure import comparison_figure, run_colors, steps_comparison_figure
from evaluation.plot_axes import CLIPPED_MARKER, MIN_PERCENT_SPAN, ema
from studies.run_labels import short_label

METRICS = ["train_loss", "val_loss", "val_acc1"]
# The keys a homework comparison varies (LeNet against AlexNet differ in the first five).
VARIED = {"MODEL.NAME": ["lenet", "alexnet", "resnet18", "convnext_tiny"], "TRAIN.LR": [3e-4, 1e-3, 3e-3, 1e-2],
          "AUG.COLOR_JITTER": [0.0, 0.4], "DATA.IMG_SIZE": [32, 64, 224], "TRAIN.WEIGHT_DECAY": [0.0, 0.05, 5e-4],
          "AUG.RAND_AUGMENT": ["", "rand-m9-mstd0.5-inc1"]}
# No graph may be narrower than this share of the figure, nor lower than this many inches.
MIN_GRAPH_WIDTH_SHARE = 0.2
MIN_GRAPH_HEIGHT_IN = 2.5


def metrics_rows(epochs=3, loss_scale=1.0, acc_offset=0.0):
    return [{"epoch": epoch, "train_loss": loss_scale * (2.0 - 0.5 * epoch), "val_loss": loss_scale * (2.1 - 0.4 * epoch),
             "val_acc1": 25.0 + 10 * epoch + acc_offset} for epoch in range(epochs)]


def labelled_runs(runs, keys):
    """`runs` configs differing in the first `keys` keys of VARIED, labelled as the comparison labels them."""
    names = list(VARIED)[:keys]
    curves = {}
    for run in range(runs):
        config = {key: VARIED[key][(run + position) % len(VARIED[key])] for position, key in enumerate(names)}
        config["SEED"] = run  # runs can share every varied value; the seed tells them apart
        curves[short_label(config, names + ["SEED"])] = metrics_rows(acc_offset=run)
    return curves


def rendered(figure):
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def overlaps(a, b):
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("runs", [2, 6, 12])
@pytest.mark.parametrize("keys", [1, 3, 6])
def test_the_legend_lies_inside_the_figure_and_covers_no_graph(runs, keys):
    curves = labelled_runs(runs, keys)
    figure = comparison_figure(curves, METRICS, title="lr_sweep: lenet vs alexnet on cifar10")
    renderer = rendered(figure)
    legend, = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == list(curves)
    box, page = legend.get_window_extent(renderer), figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    for axis in figure.axes:
        plotting_area = axis.get_window_extent(renderer)
        assert not overlaps(box, plotting_area), f"the legend covers the {axis.get_ylabel()} graph"
        assert axis.get_legend() is None
        assert plotting_area.width >= MIN_GRAPH_WIDTH_SHARE * page.width
        assert plotting_area.height >= MIN_GRAPH_HEIGHT_IN * figure.dpi


def test_a_legend_entry_wider_than_the_figure_widens_the_figure():
    label = "x" * 400
    figure = comparison_figure({label: metrics_rows()}, ["val_acc1"])
    renderer = rendered(figure)
    box = figure.legends[0].get_window_extent(renderer)
    assert figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1


def test_the_comparison_has_one_graph_per_metric_and_one_line_per_run_in_one_colour_everywhere():
    curves = {"lr 1e-1": metrics_rows(3), "lr 1e-2": metrics_rows(2)}
    figure = comparison_figure(curves, ["val_loss", "val_acc1"], title="sweep: lenet on digits")
    assert figure.get_suptitle() == "sweep: lenet on digits"
    assert [axis.get_ylabel() for axis in figure.axes] == ["val_loss", "val_acc1"]
    for axis in figure.axes:
        assert [list(line.get_xdata()) for line in axis.get_lines()] == [[1, 2, 3], [1, 2]]
        assert [line.get_color() for line in axis.get_lines()] == run_colors(2)
    assert list(figure.axes[1].get_lines()[0].get_ydata()) == [25.0, 35.0, 45.0]


def test_a_run_without_a_metric_keeps_its_colour_in_the_other_graphs():
    curves = {"a": metrics_rows(2), "b": [dict(row, peak_rss_mb=100.0) for row in metrics_rows(2)]}
    figure = comparison_figure(curves, ["val_loss", "peak_rss_mb"])
    loss_axis, memory_axis = figure.axes
    assert len(loss_axis.get_lines()) == 2
    line, = memory_axis.get_lines()
    assert line.get_color() == run_colors(2)[1] and list(line.get_ydata()) == [100.0, 100.0]
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["a", "b"]


def lr_sweep():
    """Four runs of an LR sweep; 3e-3 diverged (its train loss climbs to 33.8)."""
    curves = {f"lr {lr}": metrics_rows(3, acc_offset=index) for index, lr in enumerate(("1e-4", "3e-4", "1e-3"))}
    curves["lr 3e-3"] = [{"epoch": 0, "train_loss": 2.2, "val_loss": 2.3, "val_acc1": 10.0},
                         {"epoch": 1, "train_loss": 9.5, "val_loss": 12.0, "val_acc1": 10.0},
                         {"epoch": 2, "train_loss": 33.8, "val_loss": math.nan, "val_acc1": 10.0}]
    return curves


def test_a_diverged_run_does_not_flatten_the_others_and_is_clipped_with_a_marker():
    figure = comparison_figure(lr_sweep(), METRICS, diverged=["lr 3e-3"])
    train_loss_axis = figure.axes[0]
    bottom, top = train_loss_axis.get_ylim()
    assert 2.0 <= top < 2.5 and 0.5 < bottom <= 1.0  # the kept runs' 1.0 .. 2.0, with margins
    assert train_loss_axis.get_yscale() == "linear"
    diverged = [line for line in train_loss_axis.get_lines() if line.get_label() == "lr 3e-3 (diverged)"]
    assert list(diverged[0].get_ydata()) == [top, top, top]  # 2.2 is above the kept range too
    markers = [line for line in train_loss_axis.get_lines() if line.get_marker() == CLIPPED_MARKER]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [1, 2, 3]
    assert [text.get_text() for text in figure.legends[0].get_texts()][-1] == "lr 3e-3 (diverged)"
    val_loss_axis = figure.axes[1]
    clipped_val = [line for line in val_loss_axis.get_lines() if line.get_marker() == CLIPPED_MARKER]
    assert list(clipped_val[0].get_xdata()) == [1, 2, 3]  # NaN is drawn on the edge too


def test_a_diverged_run_that_comes_back_below_the_others_stays_inside_the_axis():
    curves = {"calm": [{"epoch": epoch, "train_loss": loss} for epoch, loss in enumerate((2.4, 4.2, 1.9))],
              "wild": [{"epoch": epoch, "train_loss": loss} for epoch, loss in enumerate((2.0, 40.0, 0.87))]}
    axis = comparison_figure(curves, ["train_loss"], diverged=["wild"]).axes[0]
    bottom, top = axis.get_ylim()
    assert bottom < 0.87 and top < 40.0
    wild = [line for line in axis.get_lines() if line.get_label() == "wild (diverged)"][0]
    assert list(wild.get_ydata()) == [2.0, top, 0.87]


def test_loss_axes_turn_logarithmic_when_the_kept_runs_span_more_than_a_decade():
    curves = {"fast": metrics_rows(3, loss_scale=0.01), "slow": metrics_rows(3)}
    loss_axis = comparison_figure(curves, ["train_loss"]).axes[0]
    assert loss_axis.get_yscale() == "log"
    bottom, top = loss_axis.get_ylim()
    assert bottom < 0.01 * 1.0 and top > 2.0


def test_log_axes_are_labelled_in_plain_numbers_with_2x_and_5x_over_a_decade_or_two():
    curves = {"run": [{"epoch": epoch, "train_loss": loss} for epoch, loss in enumerate((2.3, 1.0, 0.5, 0.2))]}
    axis = comparison_figure(curves, ["train_loss"]).axes[0]
    rendered(axis.figure)
    assert axis.get_yscale() == "log"
    labels = [label.get_text() for label in axis.get_yticklabels() + axis.get_yticklabels(minor=True)]
    assert not any("$" in label for label in labels)  # no mathtext: its font lookups warn into the log
    assert {"0.2", "0.5", "1", "2"} <= set(labels)


def test_an_accuracy_axis_spans_at_least_one_point():
    curves = {"a": [{"epoch": 0, "val_acc1": 50.0}, {"epoch": 1, "val_acc1": 50.004}],
              "b": [{"epoch": 0, "val_acc1": 50.002}, {"epoch": 1, "val_acc1": 50.001}]}
    bottom, top = comparison_figure(curves, ["val_acc1"]).axes[0].get_ylim()
    assert top - bottom == pytest.approx(MIN_PERCENT_SPAN)
    assert bottom < 50.0 and top > 50.004


def test_ema_matches_the_debiased_exponential_average_and_skips_nan():
    assert ema([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])
    assert ema([0.0, 10.0], 0.5) == pytest.approx([0.0, 0.5 * 10 / 0.75])  # (0.5*0 + 0.5*10) / (1 - 0.25)
    assert ema([2.0, math.nan, 4.0], 0.0) == pytest.approx([2.0, 2.0, 4.0])


def test_the_step_comparison_draws_each_run_smoothed_over_its_faint_raw_curve():
    steps = {"lr 1e-3": ([0, 1, 2, 3], [2.0, 1.0, 3.0, 1.0]), "lr 1e-2": ([0, 1, 2], [2.0, 2.0, 2.0])}
    figure = steps_comparison_figure(steps, title="sweep: lenet on digits", smoothing=0.5)
    axis, = figure.axes
    raw = [line for line in axis.get_lines() if line.get_alpha() is not None and line.get_alpha() < 0.5]
    smoothed = [line for line in axis.get_lines() if line.get_alpha() is None]
    assert [list(line.get_ydata()) for line in raw] == [[2.0, 1.0, 3.0, 1.0], [2.0, 2.0, 2.0]]
    assert list(smoothed[0].get_ydata()) == pytest.approx(ema([2.0, 1.0, 3.0, 1.0], 0.5))
    assert [line.get_color() for line in raw] == [line.get_color() for line in smoothed]
    assert axis.get_xlabel() == "step" and "EMA 0.5" in axis.get_ylabel()
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["lr 1e-3", "lr 1e-2"]
    assert figure.get_suptitle() == "sweep: lenet on digits"
