"""Ensemble runs, checkpoints and fold sweeps: average their class probabilities, and score the
blend on val against each member.

    python scripts/ensemble.py RUN_OR_CHECKPOINT_OR_SWEEP... [--weights w1,w2,...|auto] [--tta MODE]
                               [--out DIR] [--format label|probs|topk] [--topk K]
                               [--sample-submission FILE] [--device D] [--data-path DIR]

Each path is a run folder (one member: its best.pth), a checkpoint file (one member), or a folder of
runs: each ordinary run in it is a member, and the fold runs of a K-fold sweep are one member (their
out-of-fold rows as val, their mean test probabilities). A member's probabilities are the saved
ones where they match (the run's own val_probs.csv and test_probs.csv, or an eval-<time> folder's
beside the checkpoint, made by that checkpoint and, with --tta, that TTA); otherwise its checkpoint
predicts them now with its own config, as `main.py --eval --predict` does, into a new eval-<time>
folder that the next call reads. Members must share the classes, the test ids (in order) and the
val images. --weights gives one number of 0 or more per member, in the order the members are
printed (normalised to sum to 1; default: equal); `auto` fits them on val to the lowest log-loss,
which makes the ensemble's val score optimistic.

Writes into DIR (default: ensemble-<time> in the current folder) submission.csv (in --format,
default the first member's SUBMISSION.FORMAT, with its header and ids; checked against
--sample-submission when given), test_probs.csv, val_probs.csv, ensemble.csv (one row per member and
one for the ensemble: weight, val acc@1, macro-F1, log-loss) and ensemble.png (members against the
ensemble), and prints the table.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.run_dir import is_run_folder, new_timestamped_dir  # noqa: E402
from evaluation.submission import SUBMISSION_FORMATS, read_sample_submission  # noqa: E402
from evaluation.tta import TTA_MODES  # noqa: E402
from studies.compare import markdown_table  # noqa: E402
from studies.ensemble import (check_submission_choice, ensemble_members, parse_weights,  # noqa: E402
                              write_ensemble_outputs)
from studies.ensemble_members import Prediction, find_member_specs, read_members  # noqa: E402
from utils.cli import OneLineErrorParser, positive_int  # noqa: E402
from utils.errors import UserError  # noqa: E402
from utils.logger import create_logger  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/ensemble.py",
                                description="Average the saved class probabilities of several runs or fold sweeps "
                                            "into one submission, scored on val against each member.")
    parser.add_argument("paths", nargs="+", metavar="RUN_OR_CHECKPOINT_OR_SWEEP",
                        help="run folders (their best.pth), checkpoint files, or folders of runs")
    parser.add_argument("--weights", help="w1,w2,...: one weight of 0 or more per member (normalised to sum to 1; "
                                          "default: equal), or auto: fitted on val to the lowest log-loss")
    parser.add_argument("--out", help="where to write the ensemble (default: ensemble-<time> in the current folder)")
    parser.add_argument("--format", choices=SUBMISSION_FORMATS, dest="submission_format",
                        help="submission.csv's rows (default: the first member's SUBMISSION.FORMAT)")
    parser.add_argument("--topk", type=positive_int, metavar="K",
                        help="classes per row of --format topk (default: the first member's SUBMISSION.TOPK)")
    parser.add_argument("--tta", choices=TTA_MODES,
                        help="use probabilities predicted with this TEST.TTA, predicting them now where none are "
                             "saved (default: as saved, else each member's own TEST.TTA)")
    parser.add_argument("--sample-submission", metavar="FILE",
                        help="the competition's sample_submission.csv: submission.csv must match its header, ids "
                             "and order, or is kept as submission.csv.rejected and the command fails")
    parser.add_argument("--device", default="auto", help="DEVICE for members predicted now: auto, cpu, cuda or cuda:N")
    parser.add_argument("--data-path", help="DATA.DATA_PATH for members predicted now (default: each member's own)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    create_logger(None)
    try:
        out = args.out or new_timestamped_dir(os.getcwd(), prefix="ensemble-")
        if is_run_folder(out):
            # Its own test_probs.csv, val_probs.csv and submission.csv would be overwritten.
            raise UserError(f"--out {out} is a run's folder; give a folder of its own for the ensemble")
        # Read first, so that a missing file stops the command before any member is predicted.
        sample = read_sample_submission(args.sample_submission) if args.sample_submission else None
        specs = find_member_specs(args.paths)
        weights = parse_weights(args.weights, len(specs))  # before any member is predicted
        members = read_members(specs, Prediction(args.tta, args.device, args.data_path))
        check_submission_choice(args.submission_format, args.topk, members)
        result = ensemble_members(members, weights)
        written = write_ensemble_outputs(result, out, args.submission_format, args.topk, sample)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for member in members:
        print(member.source)
    print(markdown_table(result.table))
    if result.fitted:
        fitted = ", ".join(f"{member.name} {weight:.4f}" for member, weight in zip(members, result.weights))
        print(f"fitted weights (lowest val log-loss): {fitted}")
        print("warning: the ensemble's val score is optimistic: its weights were fitted on the same val rows",
              file=sys.stderr)
    print(f"wrote {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
