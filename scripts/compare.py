"""Compare runs: one graph per metric with every run's curve, and a table with one row per run.

    python scripts/compare.py DIR... [--metric val_loss] [--metric val_acc1 ...] [--out compare.png]
    python scripts/compare.py DIR... --x step [--smoothing 0.9]

DIR is a run folder or a folder of runs (a sweep, an experiment folder). Runs are told apart by
the config keys that differ between them, labelled short (`alexnet, lr 3e-4, 64 px`); the table
holds each key's full value. `--x step` overlays the train loss of every step (steps.csv),
EMA-smoothed as W&B shows it, over the raw curve drawn faint. The table is also written as CSV
beside the picture (compare.csv) and printed as markdown. --out defaults to compare.png in DIR
when one DIR is given, else in the current folder.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from utils.choices import resolve_choice  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from evaluation.comparison_figure import DEFAULT_SMOOTHING  # noqa: E402
from studies.compare import DEFAULT_METRICS, STEP_METRICS, compare_runs, find_runs, markdown_table  # noqa: E402
from utils.errors import UserError  # noqa: E402


def smoothing_weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), e.g. 0.9; got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/compare.py",
                                description="Overlay the curves of several runs and tabulate them.")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run folders, or folders of runs")
    parser.add_argument("--metric", action="append", dest="metrics",
                        help=f"a metrics.jsonl column to plot; repeat for more (default: {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--out", help="the picture to write (default: compare.png in DIR, or here)")
    parser.add_argument("--x", choices=("epoch", "step"), default="epoch",
                        help="plot the metrics per epoch (default), or the train loss per step from steps.csv")
    parser.add_argument("--smoothing", type=smoothing_weight, default=DEFAULT_SMOOTHING,
                        help=f"EMA weight of the per-step curves, in [0, 1) (default {DEFAULT_SMOOTHING}; 0: raw)")
    parser.add_argument("--name", help="the title's name for this comparison (default: DIR's folder name)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        records, problems = find_runs(args.dirs)
        if not records:
            raise UserError(f"no runs found in {', '.join(args.dirs)}; pass run folders (they hold config.yaml) "
                            f"or folders that contain them")
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)
        if args.x == "step":
            known, default = list(STEP_METRICS), STEP_METRICS
        else:
            known = sorted({key for record in records for row in record.rows for key in row} - {"epoch"})
            default = DEFAULT_METRICS
        metrics = [resolve_choice("--metric", metric, known) if known else metric
                   for metric in (args.metrics or default)]
        out = args.out or os.path.join(args.dirs[0] if len(args.dirs) == 1 else ".", "compare.png")
        name = args.name or (os.path.basename(os.path.abspath(args.dirs[0])) if len(args.dirs) == 1 else "")
        table = compare_runs(records, metrics, out, name=name, x=args.x, smoothing=args.smoothing)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(table))
    print(f"wrote {out} and {os.path.splitext(out)[0]}.csv ({len(records)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
