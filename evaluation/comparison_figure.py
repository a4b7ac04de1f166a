"""The comparison of runs: one graph per metric with every run's curve (per epoch), or the per-step
train loss smoothed over its raw curve; one legend below the graphs, a title saying what is shown.

A diverged run cannot flatten the others: loss axes take their limits from the runs that did not
diverge (turning logarithmic past a decade), and the diverged run is drawn clipped at the top edge
with a marker where it leaves the axis, its legend entry saying `diverged`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from evaluation.plot_axes import (CLIPPED_MARKER, clipped, ema, finite, is_loss, legend_below, loss_limits, min_span,
                                  use_log_scale, widen_to)

# Width of one graph, and the height of the graphs (the legend adds its own height below them).
GRAPH_WIDTH = 6.0
GRAPHS_HEIGHT = 4.5
# The raw per-step curve under its smoothed one.
RAW_ALPHA = 0.25
DEFAULT_SMOOTHING = 0.9


@dataclass
class Series:
    """One run's curve in one graph."""
    label: str
    x: Sequence[float]
    y: Sequence[float]
    color: tuple
    diverged: bool = False


def run_colors(count: int) -> list[tuple]:
    """A distinct colour per run, the same in every graph (a run missing from one graph would
    shift matplotlib's own colour cycle)."""
    if count <= 10:
        return [colormaps["tab10"](index) for index in range(count)]
    if count <= 20:
        return [colormaps["tab20"](index) for index in range(count)]
    return [colormaps["viridis"](value) for value in np.linspace(0, 0.95, count)]


def legend_label(label: str, diverged: bool) -> str:
    return f"{label} (diverged)" if diverged else label


def draw_series(axis: Axes, metric: str, series: Sequence[Series], marker: str | None = "o") -> dict:
    """Draw each series in `axis` with readable limits; returns {legend label: line} for the legend."""
    lines = {}
    kept = [value for line in series if not line.diverged for value in line.y]
    if len(finite(kept)):  # a diverged run's points inside the others' range (or below it) count too
        ceiling = finite(kept).max()
        kept += [value for line in series if line.diverged for value in finite(line.y) if value <= ceiling]
    else:  # every run diverged: let all of them decide
        kept = [value for line in series for value in line.y]
    top = None
    if is_loss(metric) and len(finite(kept)):
        bottom, top, log = loss_limits(kept)
        if log:
            use_log_scale(axis)
        axis.set_ylim(bottom, top)
    for line in series:
        y, clipped_at = clipped(line.y, top) if top is not None else (list(line.y), [])
        label = legend_label(line.label, line.diverged)
        lines[label], = axis.plot(line.x, y, marker=marker, markersize=3, color=line.color, label=label)
        if clipped_at:
            axis.plot([line.x[i] for i in clipped_at], [top] * len(clipped_at), linestyle="none",
                      marker=CLIPPED_MARKER, markersize=8, color=line.color, clip_on=False)
    if top is None:
        widen_to(axis, kept, min_span(metric))
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    return lines


def comparison_figure(curves: dict[str, Sequence[dict]], metrics: Sequence[str], title: str = "",
                      diverged: Sequence[str] = ()) -> Figure:
    """One graph per metric, one line per run, x in epochs counted from 1: `curves` maps a run's
    label to its metrics rows; `diverged` names the runs that diverged. A run without a metric
    is left out of that graph."""
    figure = Figure(figsize=(GRAPH_WIDTH * len(metrics), GRAPHS_HEIGHT), layout="constrained")
    if title:
        figure.suptitle(title)
    colors = dict(zip(curves, run_colors(len(curves))))
    handles: dict = {}
    for axis, metric in zip(np.atleast_1d(figure.subplots(1, len(metrics), squeeze=False)).ravel(), metrics):
        series = []
        for label, rows in curves.items():
            points = [(row["epoch"] + 1, row[metric]) for row in rows if row.get(metric) is not None]
            if points:
                x, y = zip(*points)
                series.append(Series(label, x, y, colors[label], label in diverged))
        handles.update((label, line) for label, line in draw_series(axis, metric, series).items()
                       if label not in handles)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    ordered = [legend_label(label, label in diverged) for label in curves]
    legend_below(figure, [handles[label] for label in ordered if label in handles],
                 [label for label in ordered if label in handles])
    return figure


def steps_comparison_figure(steps: dict[str, tuple[Sequence[int], Sequence[float]]], title: str = "",
                            diverged: Sequence[str] = (), smoothing: float = DEFAULT_SMOOTHING) -> Figure:
    """The per-step train loss of each run: `steps` maps a run's label to (global steps, losses).
    Each run's EMA-smoothed curve (weight `smoothing`, as W&B and TensorBoard smooth) is drawn
    over its raw curve, faint."""
    figure = Figure(figsize=(GRAPH_WIDTH * 1.5, GRAPHS_HEIGHT), layout="constrained")
    if title:
        figure.suptitle(title)
    axis = figure.subplots()
    colors = dict(zip(steps, run_colors(len(steps))))
    series = [Series(label, list(x), ema(y, smoothing), colors[label], label in diverged)
              for label, (x, y) in steps.items() if len(x)]
    for label, (x, y) in steps.items():  # beneath the smoothed curves, outside the legend
        axis.plot(x, y, color=colors[label], alpha=RAW_ALPHA, linewidth=0.8)
    handles = draw_series(axis, "train_loss", series, marker=None)
    axis.set_ylabel(f"train loss per step (EMA {smoothing:g}; raw faint)")
    axis.set_xlabel("step")
    legend_below(figure, list(handles.values()), list(handles))
    return figure
