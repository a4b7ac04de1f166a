"""Axes and legends that stay readable whatever the runs did: limits that a diverged run cannot
flatten, a minimum span so that noise does not look like a trend, a legend below the graphs that
never covers them, and the EMA smoothing W&B and TensorBoard draw over per-step curves.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import FuncFormatter

# The smallest y range an axis shows, by what the metric counts: accuracies are percentages, so one
# point of accuracy; verification's AUC and EER are fractions, so 0.01.
MIN_PERCENT_SPAN = 1.0
MIN_FRACTION_SPAN = 0.01
# A loss axis turns logarithmic when its kept values span more than this ratio (a decade).
LOG_SCALE_RATIO = 10.0
# A log axis spanning less than this ratio also labels its 2x and 5x ticks.
LABEL_MINOR_BELOW_RATIO = 1000.0
# Share of the kept range added above and below it, as matplotlib's own margins do.
MARGIN = 0.05
# A diverged run's points beyond the axis are drawn on its edge with this marker.
CLIPPED_MARKER = "^"
LEGEND_FONT_SIZE = 8


def use_log_scale(axis: Axes) -> None:
    """A logarithmic y axis labelled in plain numbers (0.3, 2, 1e-05), not mathtext's 2x10^0, whose
    font lookups write warnings into a run's log."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))

    def minor_label(value: float, _) -> str:
        # Over a decade or two, powers of ten alone leave one or two labels: add 2x and 5x.
        bottom, top = axis.get_ylim()
        if value <= 0 or bottom <= 0 or top / bottom > LABEL_MINOR_BELOW_RATIO:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        return f"{value:g}" if round(mantissa) in (2, 5) else ""
    axis.yaxis.set_minor_formatter(FuncFormatter(minor_label))


def is_loss(metric: str) -> bool:
    return "loss" in metric


def min_span(metric: str) -> float:
    """The smallest y range worth showing for `metric` (0: no minimum)."""
    if "acc" in metric:
        return MIN_PERCENT_SPAN
    if metric.startswith("verify_"):
        return MIN_FRACTION_SPAN
    return 0.0


def finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray([value for value in values if value is not None], dtype=float)
    return array[np.isfinite(array)]


def widen_to(axis: Axes, values: Sequence[float], span: float) -> None:
    """Widen `axis`'s y range to `span` around `values`' middle when they span less."""
    kept = finite(values)
    if not len(kept) or span <= 0 or kept.max() - kept.min() >= span:
        return
    middle = (kept.max() + kept.min()) / 2
    axis.set_ylim(middle - span / 2, middle + span / 2)


def loss_limits(kept: Sequence[float]) -> tuple[float, float, bool]:
    """(bottom, top, log) for a loss axis from the values that decide it: log when they are all
    positive and span more than a decade, then margins in that scale."""
    values = finite(kept)
    low, high = float(values.min()), float(values.max())
    log = low > 0 and high / low > LOG_SCALE_RATIO
    if log:
        low_log, high_log = math.log10(low), math.log10(high)
        pad = MARGIN * (high_log - low_log)
        return 10 ** (low_log - pad), 10 ** (high_log + pad), True
    pad = MARGIN * (high - low) or MARGIN * max(abs(high), 1e-12)
    return low - pad, high + pad, False


def clipped(values: Sequence[float], top: float) -> tuple[list[float], list[int]]:
    """`values` with those above `top` (and NaN or Inf) set to `top`, and the indices clipped."""
    shown, indices = [], []
    for index, value in enumerate(values):
        if value is None or not math.isfinite(value) or value > top:
            shown.append(top)
            indices.append(index)
        else:
            shown.append(value)
    return shown, indices


def ema(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average with TensorBoard's and W&B's debiasing (the first points are not
    pulled towards 0); NaN or Inf values are skipped, keeping the average so far."""
    smoothed, average, weight = [], 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            average = smoothing * average + (1 - smoothing) * value
            weight = smoothing * weight + (1 - smoothing)
        smoothed.append(average / weight if weight else math.nan)
    return smoothed


def legend_below(figure: Figure, handles: Sequence, labels: Sequence[str]) -> Legend | None:
    """One legend for the whole figure, below its graphs, in as many columns as its width holds.
    The figure grows taller by the legend's height, and wider when one entry is wider than it,
    so that the graphs keep their size and the legend never covers them."""
    if not labels:
        return None
    dpi = figure.dpi
    legend = figure.legend(handles, labels, loc="outside lower center", ncols=1, fontsize=LEGEND_FONT_SIZE,
                           frameon=False)
    figure.draw_without_rendering()
    entry_width = legend.get_window_extent().width / dpi  # one column: the widest entry
    width = figure.get_figwidth()
    if entry_width > 0.95 * width:
        figure.set_figwidth(entry_width / 0.95)
        width = figure.get_figwidth()
    columns = max(1, min(len(labels), int(0.95 * width // entry_width)))
    columns = math.ceil(len(labels) / math.ceil(len(labels) / columns))  # balanced rows: 6 as 3+3, not 5+1
    legend.remove()
    legend = figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=LEGEND_FONT_SIZE,
                           frameon=False)
    figure.draw_without_rendering()
    figure.set_figheight(figure.get_figheight() + legend.get_window_extent().height / dpi)
    return legend
