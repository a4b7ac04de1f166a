"""The ensemble against its members: one horizontal bar per member and one for the ensemble, on val
acc@1 (higher is better) and val log-loss (lower is better), each bar labelled with its value.
scripts/ensemble.py writes it as ensemble.png (studies.ensemble).

The bars lie down so that member names, which are folder paths, read in full beside them. The
acc@1 axis starts near the lowest bar, not at 0: ensembles are compared on the last points of
accuracy, which bars from 0 would draw alike; the value on every bar says where it ends.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.patches import Patch

MEMBER_COLOR = "tab:blue"
ENSEMBLE_COLOR = "tab:orange"
NAME_WIDTH = 32  # characters per line of a member's name
MIN_ACC_SPAN = 1.0  # points of acc@1 the axis shows at least


def wrap_name(name: str, width: int = NAME_WIDTH) -> str:
    """`name` in lines of at most `width` characters, broken after a / or at a space where it can
    be, else inside a part too long for a line."""
    lines = [""]
    for part in re.findall(r"[^/ ]+/?|[ /]", name):
        if len(lines[-1]) + len(part.rstrip()) > width and lines[-1].strip():
            lines.append("")
        lines[-1] += part.lstrip() if not lines[-1] else part
        while len(lines[-1].rstrip()) > width:
            lines[-1:] = [lines[-1][:width], lines[-1][width:]]
    return "\n".join(line.strip() for line in lines if line.strip())


def acc_axis_limits(values: Sequence[float]) -> tuple[float, float]:
    """(left, right) of the acc@1 axis: from below the lowest finite value (by twice the values'
    spread, at least MIN_ACC_SPAN; never below 0) to room for the value labels past the highest."""
    finite = [value for value in values if math.isfinite(value)] or [0.0]
    low, high = min(finite), max(finite)
    left = max(0.0, low - max(MIN_ACC_SPAN, 2 * (high - low)))
    return left, high + 0.25 * (high - left)


def ensemble_figure(names: Sequence[str], acc1: Sequence[float], log_loss: Sequence[float],
                    title: str = "") -> Figure:
    """Two bar charts side by side, val acc@1 (%) and val log-loss, of the members `names[:-1]`
    (top to bottom) and the ensemble, `names[-1]`, drawn last in its own colour; the legend tells
    the two apart."""
    labels = [wrap_name(name) for name in names]
    lines = sum(label.count("\n") + 1 for label in labels)
    figure = Figure(figsize=(11.0, 1.6 + 0.3 * lines + 0.25 * len(names)), layout="constrained")
    acc_axis, loss_axis = figure.subplots(1, 2, sharey=True)
    colors = [MEMBER_COLOR] * (len(names) - 1) + [ENSEMBLE_COLOR]
    positions = list(range(len(names)))
    for axis, values, label, fmt in ((acc_axis, acc1, "val acc@1 (%), higher is better", "%.2f"),
                                     (loss_axis, log_loss, "val log-loss, lower is better", "%.4f")):
        widths = [value if math.isfinite(value) else 0.0 for value in values]
        bars = axis.barh(positions, widths, color=colors, edgecolor="black")
        axis.bar_label(bars, labels=[fmt % value if math.isfinite(value) else "n/a" for value in values],
                       padding=3, fontsize=8)
        axis.set_title(label, fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    acc_axis.set_yticks(positions, labels, fontsize=8)
    acc_axis.invert_yaxis()  # the first member on top (the axes share it)
    acc_axis.set_xlim(*acc_axis_limits(acc1))
    loss_axis.margins(x=0.25)
    loss_axis.set_xlim(left=0)
    acc_axis.set_xlabel("acc@1 (%)")
    loss_axis.set_xlabel("log-loss (nats)")
    figure.legend(handles=[Patch(facecolor=MEMBER_COLOR, edgecolor="black", label="member"),
                           Patch(facecolor=ENSEMBLE_COLOR, edgecolor="black", label="ensemble")],
                  loc="outside lower center", ncols=2)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
