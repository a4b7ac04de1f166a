"""Put the K fold runs of K-fold cross-validation back together.

    python scripts/folds.py SWEEP_DIR [--out DIR]

SWEEP_DIR is the folder of `scripts/sweep.py --folds K` (or any folder holding the K fold runs).
Writes into DIR (default: SWEEP_DIR) oof_probs.csv, every train image's out-of-fold probabilities
and true class; test_probs.csv, the folds' test probabilities averaged; and submission.csv from
that average, as the runs' SUBMISSION keys ask. Prints each fold's val acc@1 and the out-of-fold
acc@1 of the whole train split. The folds are checked first: folds 0..K-1 of one split, each
train image in exactly one fold's rows (studies.folds.assemble_oof).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.run_dir import is_run_folder  # noqa: E402
from studies.compare import find_runs  # noqa: E402
from studies.folds import assemble_oof, write_oof_outputs  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.errors import UserError  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/folds.py",
                                description="Assemble and score the out-of-fold predictions of K fold runs, and "
                                            "average their test predictions into one submission.")
    parser.add_argument("sweep_dir", metavar="SWEEP_DIR", help="the folder of scripts/sweep.py --folds K")
    parser.add_argument("--out", help="where to write oof_probs.csv, test_probs.csv and submission.csv "
                                      "(default: SWEEP_DIR)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not os.path.isdir(args.sweep_dir):
            raise UserError(f"{args.sweep_dir} is not a folder; pass the folder of scripts/sweep.py --folds K")
        if is_run_folder(args.sweep_dir):
            # Its own test_probs.csv and submission.csv would be overwritten by the folds' average.
            raise UserError(f"{args.sweep_dir} is one run's folder; pass the sweep folder that holds the fold runs")
        records, _ = find_runs([args.sweep_dir])
        result, report = assemble_oof([record.run_dir for record in records])
        written = write_oof_outputs(result, args.out or args.sweep_dir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(report))
    if result.test is None:
        print("no test_probs.csv or submission.csv: the fold runs predicted no test images")
    print(f"wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
