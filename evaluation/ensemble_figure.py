"""The ensemble against its members: one bar per member and one for the ensemble, on val acc@1
(higher is better) and val log-loss (lower is better), each bar labelled with its value.
scripts/ensemble.py writes it as ensemble.png (studies.ensemble).
"""
from __future__ import annotations

import math
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

MEMBER_COLOR = "tab:blue"
ENSEMBLE_COLOR = "tab:orange"
# Bar labels that would run into each other are turned upright past this many bars.
MAX_LEVEL_TICK_LABELS = 4


def ensemble_figure(names: Sequence[str], acc1: Sequence[float], log_loss: Sequence[float],
                    title: str = "") -> Figure:
    """Two bar charts side by side, val acc@1 (%) and val log-loss, of the members `names[:-1]` and
    the ensemble, `names[-1]`, drawn last in its own colour; the legend tells the two apart."""
    figure = Figure(figsize=(max(8.0, 1.6 * len(names)), 4.5), layout="constrained")
    acc_axis, loss_axis = figure.subplots(1, 2)
    colors = [MEMBER_COLOR] * (len(names) - 1) + [ENSEMBLE_COLOR]
    positions = list(range(len(names)))
    for axis, values, label, fmt in ((acc_axis, acc1, "val acc@1 (%), higher is better", "%.2f"),
                                     (loss_axis, log_loss, "val log-loss, lower is better", "%.4f")):
        heights = [value if math.isfinite(value) else 0.0 for value in values]
        bars = axis.bar(positions, heights, color=colors, edgecolor="black")
        axis.bar_label(bars, labels=[fmt % value if math.isfinite(value) else "n/a" for value in values],
                       padding=2, fontsize=8)
        axis.set_xticks(positions, list(names), rotation=0 if len(names) <= MAX_LEVEL_TICK_LABELS else 30,
                        ha="center" if len(names) <= MAX_LEVEL_TICK_LABELS else "right", fontsize=8)
        axis.set_title(label, fontsize=10)
        axis.margins(y=0.15)
        axis.grid(axis="y", alpha=0.3)
    acc_axis.set_ylabel("acc@1 (%)")
    loss_axis.set_ylabel("log-loss (nats)")
    figure.legend(handles=[Patch(facecolor=MEMBER_COLOR, edgecolor="black", label="member"),
                           Patch(facecolor=ENSEMBLE_COLOR, edgecolor="black", label="ensemble")],
                  loc="outside lower center", ncols=2)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
