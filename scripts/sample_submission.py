"""Write the sample_submission.csv a competition on a config's data would publish.

    python scripts/sample_submission.py --cfg CFG [--out FILE] [--data-path DIR] [--opts KEY VALUE ...]

Every test image of the config's data set, in test order, under the config's SUBMISSION keys: the
header (SUBMISSION.HEADER), the ids (SUBMISSION.ID), the format (SUBMISSION.FORMAT, with
SUBMISSION.TOPK) and the class labels (SUBMISSION.LABELS), with placeholder values as Kaggle's
samples have them: the first class in every row (label), the first k classes (topk), or equal
probabilities (probs). A teacher running a class competition hands it out; `--sample-submission`
of main.py and scripts/ensemble.py checks a submission against it. FILE defaults to
sample_submission.csv in the current folder, and an existing file is not replaced.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from config import get_config, opts_from_flags  # noqa: E402
from data.build import build_loader  # noqa: E402
from engine.finish import submission_columns  # noqa: E402
from evaluation.submission import submission_writer  # noqa: E402
from utils.cli import OneLineErrorParser  # noqa: E402
from utils.errors import UserError, user_error_line  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = OneLineErrorParser("python scripts/sample_submission.py",
                                description="Write the sample_submission.csv of a config's test split.")
    parser.add_argument("--cfg", required=True, help="YAML config file: its data set and SUBMISSION keys")
    parser.add_argument("--out", default="sample_submission.csv",
                        help="the file to write (default: sample_submission.csv; an existing one is kept)")
    parser.add_argument("--data-path", help="DATA.DATA_PATH")
    parser.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                        help="KEY VALUE pairs applied last, e.g. --opts SUBMISSION.FORMAT probs")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if os.path.exists(args.out):
            raise UserError(f"{args.out} exists; remove it, or pass --out with another file")
        cfg = get_config(args.cfg, opts_from_flags({"DATA.DATA_PATH": args.data_path}) + list(args.opts))
        loaders = build_loader(cfg, device=torch.device("cpu"))
        if "test" in loaders.subsets:
            raise UserError(f"DATA.TEST_SUBSET {cfg.DATA.TEST_SUBSET:g} keeps part of the test split, and a sample "
                            f"submission lists every test image; set DATA.TEST_SUBSET 0")
        num_images, class_names = len(loaders.test_dataset), loaders.class_names
        uniform = np.full((num_images, len(class_names)), 1.0 / len(class_names), dtype=np.float32)
        columns = submission_columns(cfg, loaders)
        submission_writer(cfg.SUBMISSION.FORMAT, uniform, class_names, cfg.SUBMISSION.HEADER, columns["ids"],
                          columns["class_names"], cfg.SUBMISSION.TOPK)(args.out)
    except UserError as e:
        print(f"error: {user_error_line(e)}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {num_images:,} test images, SUBMISSION.FORMAT {cfg.SUBMISSION.FORMAT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
